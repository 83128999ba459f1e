{# Services whose 7-day error rate is above services.max_error_rate (0.30, warn;
   docs/requirements.md#alert-error-rate). #}
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
    where metric = 'error_rate_7d'

)

select * from final
