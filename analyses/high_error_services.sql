{#
    The guide's "high error rates" troubleshooting query (docs/requirements.md#alert-error-rate):
    services whose 7-day error rate is above the alert_error_rate_warn var (20%), the rate
    mart_monitoring_alerts warns at.
#}
with

health as (

    select * from {{ ref('mart_service_health') }}

),

final as (

    select
        service_name,
        error_rate_7d as avg_error,
        labeled_7d_count
    from health
    where error_rate_7d > {{ var('alert_error_rate_warn') }}

)

select * from final
order by avg_error desc
