{# Services without a prediction for longer than services.silent_after_minutes (warn;
   docs/requirements.md#alert-silent-service). #}
{{ config(severity='warn') }}

with

alerts as (

    select * from {{ ref('mart_monitoring_alerts') }}

),

final as (

    select
        entity as service_name,
        alert_date,
        metric,
        observed_value,
        threshold,
        severity,
        message
    from alerts
    where metric = 'minutes_since_last_prediction'

)

select * from final
