{#
    The writer's former code_roach_ml_predictions table as a typed view
    (docs/requirements.md#service-views): Code Roach's predictions with the
    service's fields taken out of `context`, and their outcomes.
#}
{{ config(materialized='view') }}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'code-roach'

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    where service_name = 'code-roach'

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
        predictions.context ->> 'project_id' as project_id,
        predictions.context ->> 'file_path' as file_path,
        predictions.context -> 'code_metrics' as code_metrics
    from predictions
    left join outcomes on predictions.prediction_id = outcomes.prediction_id

)

select * from final
