{#
    Two outcomes for one prediction: ml_prediction_outcomes is append-only, so a second
    outcome is a writer or ingest bug (the marts would count the prediction twice).
#}
{{ config(severity='error') }}

with

outcomes as (

    select * from {{ ref('stg_ml_raw__prediction_outcomes') }}

),

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}

),

repeated as (

    select
        prediction_id,
        count(*) as outcome_count,
        min(observed_at) as first_observed_at,
        max(observed_at) as last_observed_at
    from outcomes
    group by prediction_id
    having count(*) > 1

),

final as (

    select
        predictions.service_name,
        predictions.created_date,
        repeated.prediction_id,
        repeated.outcome_count,
        repeated.first_observed_at,
        repeated.last_observed_at
    from repeated
    left join predictions on repeated.prediction_id = predictions.prediction_id

)

select * from final
