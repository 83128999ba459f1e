{#
    One row per UTC day, service, prediction type and declared feature
    (seeds/prediction_features.csv, roles `numeric` and `categorical`) with that day's values
    collected once: a numeric feature's values as one sorted array, a categorical feature's
    categories with their counts, and how many predictions lacked a value
    (docs/requirements.md#feature-drift). mart_feature_drift_daily reads a reference window as
    a few index lookups of these rows, as mart_drift_daily does with
    int_feature_values_collected.

    A numeric value is a JSON number of the context; a category is a JSON string, number or
    boolean, as text; anything else (the key absent, null, an object, an array) is missing.
    Numbers beyond +-1e300 count as missing rather than overflow double precision.

    A table, incremental by day as int_feature_values_collected (collected_day_predictions): a
    run rebuilds every day that received a prediction since this model's last_ingested_at,
    however old the day (replayed predictions reach their own day). Outcomes do not change a
    day's inputs.
#}
{{
    config(
        materialized='incremental',
        unique_key='created_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {
                'columns': ['service_name', 'prediction_type', 'feature_name', 'created_date'],
                'unique': true,
            },
        ],
    )
}}

with

predictions as (

    {{ collected_day_predictions([
        'created_date', 'service_name', 'prediction_type', 'context', 'ingested_at',
    ]) }}

),

declared_features as (

    select
        prediction_type,
        context_key as feature_name,
        role as feature_kind
    from {{ ref('prediction_features') }}
    where role in ('numeric', 'categorical')

),

feature_values as (

    select
        predictions.created_date,
        predictions.service_name,
        predictions.prediction_type,
        declared_features.feature_name,
        declared_features.feature_kind,
        predictions.ingested_at,
        {# nested: the cast runs only on a JSON number (AND has no evaluation order) #}
        case
            when
                declared_features.feature_kind = 'numeric'
                and jsonb_typeof(predictions.context -> declared_features.feature_name)
                = 'number'
                then
                    case
                        when
                            abs((predictions.context -> declared_features.feature_name)::numeric)
                            <= 1e300
                            then
                                (predictions.context -> declared_features.feature_name)
                                ::numeric::float8
                    end
        end as numeric_value,
        case
            when
                declared_features.feature_kind = 'categorical'
                and jsonb_typeof(predictions.context -> declared_features.feature_name)
                in ('string', 'number', 'boolean')
                then predictions.context ->> declared_features.feature_name
        end as category
    from predictions
    inner join declared_features
        on predictions.prediction_type = declared_features.prediction_type

),

days as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        max(feature_kind) as feature_kind,
        count(*)::bigint as prediction_count,
        (count(numeric_value) + count(category))::bigint as value_count,
        array_agg(numeric_value order by numeric_value)
        filter (where numeric_value is not null) as sorted_values,
        max(ingested_at) as last_ingested_at
    from feature_values
    group by created_date, service_name, prediction_type, feature_name

),

category_counts as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        category,
        count(*) as category_count
    from feature_values
    where category is not null
    group by created_date, service_name, prediction_type, feature_name, category

),

category_days as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        array_agg(category order by category) as categories,
        array_agg(category_count order by category)::bigint[] as category_counts
    from category_counts
    group by created_date, service_name, prediction_type, feature_name

),

final as (

    select
        days.created_date,
        days.service_name,
        days.prediction_type,
        days.feature_name,
        days.feature_kind,
        days.prediction_count,
        days.value_count,
        days.sorted_values,
        category_days.categories,
        category_days.category_counts,
        days.last_ingested_at,
        days.prediction_count - days.value_count as missing_count
    from days
    left join category_days
        on
            days.created_date = category_days.created_date
            and days.service_name = category_days.service_name
            and days.prediction_type = category_days.prediction_type
            and days.feature_name = category_days.feature_name

)

select * from final
