{#
    The writer's former game_app_ml_predictions table as a typed view
    (docs/requirements.md#service-views): Game App's predictions with the
    service's fields taken out of `context`, and their outcomes.
#}
{{ config(materialized='view') }}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'game-app'

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    where service_name = 'game-app'

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
        predictions.context ->> 'session_id' as session_id,
        predictions.context ->> 'narrative_id' as narrative_id,
        predictions.context ->> 'scenario_id' as scenario_id
    from predictions
    left join outcomes on predictions.prediction_id = outcomes.prediction_id

)

select * from final
