{#
    The writer's former oracle_ml_predictions table as a typed view
    (docs/requirements.md#service-views): Oracle's predictions with the
    service's fields taken out of `context`, and their outcomes.
#}
{{ config(materialized='view') }}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'oracle'

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    where service_name = 'oracle'

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
        predictions.context ->> 'query' as query_text,
        predictions.context ->> 'knowledge_id' as knowledge_id,
        predictions.context -> 'relevance_scores' as relevance_scores
    from predictions
    left join outcomes on predictions.prediction_id = outcomes.prediction_id

)

select * from final
