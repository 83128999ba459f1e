{# Yesterday's volume of a service far from the same weekday's history (|z| > 3). #}
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
    where metric = 'daily_prediction_count'

)

select * from final
