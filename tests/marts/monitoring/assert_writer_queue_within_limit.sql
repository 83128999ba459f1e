{# Writers whose latest queue is above 200 items (warn, docs/requirements.md#alert-writer-queue) #}
{{ config(severity='warn') }}

with

alerts as (

    select * from {{ ref('mart_monitoring_alerts') }}

),

final as (

    select
        entity as writer_id,
        alert_date,
        metric,
        observed_value,
        threshold,
        severity,
        message
    from alerts
    where metric = 'writer_queue'

)

select * from final
