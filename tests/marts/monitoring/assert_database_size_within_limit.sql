{# The database above 10 GB: consider archiving (warn, docs/requirements.md#alert-database-size) #}
{{ config(severity='warn') }}

with

alerts as (

    select * from {{ ref('mart_monitoring_alerts') }}

),

final as (

    select
        entity as database_name,
        alert_date,
        metric,
        observed_value,
        threshold,
        severity,
        message
    from alerts
    where metric = 'database_size_bytes'

)

select * from final
