{#
    One row per UTC day, service, prediction type and drifting feature (predicted_value,
    confidence) with that day's values as one sorted array: what mart_drift_daily compares.
    Storing a day's values once, sorted, lets the drift mart read a reference window as 28
    index lookups instead of joining every value to each of the 29 days it is compared in.

    A table, not a view (the intermediate default): the drift mart looks days up by index.
    Incremental by day: a day's values only change while predictions for it still arrive, so
    a run rebuilds the newest day already collected and every later one (like the drift mart).
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

outcomes as (

    select
        created_date,
        service_name,
        prediction_type,
        predicted_value,
        confidence
    from {{ ref('fct_prediction_outcomes') }}
    {% if is_incremental() %}
        where
            created_at
            >= {{ recompute_from_date('created_date', 0) }}::timestamp at time zone 'UTC'
    {% endif %}

),

feature_values as (

    select
        created_date,
        service_name,
        prediction_type,
        'predicted_value' as feature_name,
        predicted_value as feature_value
    from outcomes
    where predicted_value is not null

    union all

    select
        created_date,
        service_name,
        prediction_type,
        'confidence' as feature_name,
        confidence as feature_value
    from outcomes
    where confidence is not null

),

final as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        count(*)::bigint as value_count,
        array_agg(feature_value order by feature_value) as sorted_values
    from feature_values
    group by created_date, service_name, prediction_type, feature_name

)

select * from final
