{#
    The one definition of a silent service (docs/requirements.md#service-silence): active, and
    no prediction for more than services.silent_after_minutes. mart_service_health and
    mart_monitoring_alerts both read it. Ephemeral, so each reads it at its own now(): the
    alerts view live, the health materialized view at its refresh.
#}
{{ config(materialized='ephemeral') }}

with

services as (

    select * from {{ ref('services') }}

),

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}

),

last_predictions as (

    {# bounded to a week so the scan prunes partitions; older means "silent for a week+" #}
    select
        service_name,
        max(created_at) as last_prediction_at
    from predictions
    where created_at > now() - interval '7 days'
    group by service_name

),

final as (

    select
        services.service_name,
        services.is_active,
        services.silent_after_minutes,
        last_predictions.last_prediction_at,
        extract(epoch from now() - coalesce(
            last_predictions.last_prediction_at, now() - interval '7 days'
        )) / 60.0 as minutes_since_last_prediction,
        services.is_active
        and coalesce(
            now() - last_predictions.last_prediction_at
            > services.silent_after_minutes * interval '1 minute',
            true
        ) as is_silent
    from services
    left join last_predictions on services.service_name = last_predictions.service_name

)

select * from final
