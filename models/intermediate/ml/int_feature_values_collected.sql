{#
    One row per UTC day, service, prediction type, drifting feature (predicted_value,
    confidence) and model version with that day's values as one sorted array: what
    mart_drift_daily (versions pooled) and mart_drift_by_version_daily compare.
    Storing a day's values once, sorted, lets the drift marts read a reference window as a few
    index lookups instead of joining every value to each of the 29 days it is compared in.

    A table, not a view (the intermediate default): the drift mart looks days up by index.
    Incremental by day (collected_day_predictions, as int_context_features_collected): a run
    rebuilds every day from the oldest that received a prediction since this model's
    last_ingested_at, however old (predictions replayed after an outage reach their own day,
    and the later days whose reference window holds it). New outcomes leave the values
    unchanged and rebuild nothing.
#}
{{
    config(
        materialized='incremental',
        unique_key='created_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {
                'columns': [
                    'service_name', 'prediction_type', 'feature_name', 'created_date',
                    'model_version',
                ],
                'unique': true,
            },
        ],
    )
}}

with

predictions as (

    {{ collected_day_predictions([
        'created_date', 'service_name', 'prediction_type', 'predicted_value', 'confidence',
        'ingested_at', "coalesce(model_version, 'unversioned') as model_version",
    ]) }}

),

feature_values as (

    select
        created_date,
        service_name,
        prediction_type,
        'predicted_value' as feature_name,
        model_version,
        predicted_value as feature_value,
        ingested_at
    from predictions
    where predicted_value is not null

    union all

    select
        created_date,
        service_name,
        prediction_type,
        'confidence' as feature_name,
        model_version,
        confidence as feature_value,
        ingested_at
    from predictions
    where confidence is not null

),

final as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        model_version,
        count(*)::bigint as value_count,
        array_agg(feature_value order by feature_value) as sorted_values,
        max(ingested_at) as last_ingested_at
    from feature_values
    group by created_date, service_name, prediction_type, feature_name, model_version

)

select * from final
