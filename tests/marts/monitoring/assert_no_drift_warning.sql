{# Distribution drift: PSI between 0.1 and 0.25 on a recent day. #}
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
    where metric like 'psi_%' and severity = 'warn'

)

select * from final
