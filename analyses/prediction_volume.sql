{#
    The guide's "prediction volume" query (docs/requirements.md#monitoring-queries), with its
    column names: last 7 days.
#}
with

volume as (

    select * from {{ ref('mart_prediction_volume_daily') }}

),

final as (

    select
        metric_date as date,  -- noqa: RF04
        service_name,
        prediction_count as predictions,
        avg_predicted_value as avg_prediction,
        avg_confidence
    from volume
    where metric_date > current_date - 7

)

select * from final
order by date desc, predictions desc
