{# Distribution drift: PSI above 0.25 on a recent day. #}
{{ config(severity='error') }}

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
    where metric like 'psi_%' and severity = 'error'

)

select * from final
