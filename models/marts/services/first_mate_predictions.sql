{#
    The writer's former first_mate_ml_predictions table as a typed view
    (docs/requirements.md#service-views): First Mate's predictions with the
    service's fields taken out of `context`, and their outcomes.
#}
{{ config(materialized='view') }}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'first-mate'

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    where service_name = 'first-mate'

),

final as (

    select
        predictions.prediction_id,
        predictions.created_at,
        predictions.prediction_type,
        predictions.model_version,
        predictions.predicted_value,
        predictions.confidence,
        outcomes.actual_value,
        outcomes.is_correct,
        outcomes.label_status,
        predictions.context ->> 'user_id' as user_id,
        predictions.context ->> 'roll_type' as roll_type,
        predictions.context ->> 'stat_name' as stat_name,
        case when jsonb_typeof(predictions.context -> 'stat_value') = 'number'
                then (predictions.context ->> 'stat_value')::double precision
        end as stat_value
    from predictions
    left join outcomes on predictions.prediction_id = outcomes.prediction_id

)

select * from final
