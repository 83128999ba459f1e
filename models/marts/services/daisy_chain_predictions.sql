{#
    The writer's former daisy_chain_ml_predictions table as a typed view
    (docs/requirements.md#service-views): Daisy Chain's predictions with the
    service's fields taken out of `context`, and their outcomes.
#}
{{ config(materialized='view') }}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'daisy-chain'

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    where service_name = 'daisy-chain'

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
        predictions.context ->> 'task_id' as task_id,
        predictions.context ->> 'task_type' as task_type
    from predictions
    left join outcomes on predictions.prediction_id = outcomes.prediction_id

)

select * from final
