{#
    The guide's "recent activity" query (docs/requirements.md#monitoring-queries): last 24
    hours by service, with the alert flags.
#}
with

health as (

    select * from {{ ref('mart_service_health') }}

),

final as (

    select
        service_name,
        last_day_count as predictions,
        last_prediction_at as last_prediction,
        last_hour_count,
        is_silent,
        is_error_rate_high
    from health

)

select * from final
order by predictions desc
