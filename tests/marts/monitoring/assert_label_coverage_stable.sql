{# Labels that stop arriving: the share labeled within a day fell below half its average. #}
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
    where metric = 'labeled_within_1d_share'

)

select * from final
