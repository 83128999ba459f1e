{#
    Traffic per UTC day, service and model version, with each version's share of its service's
    predictions that day: a challenger's ramp is one column (traffic_share). The day-and-service
    grain, which the alerts, mart_service_health and the monitoring queries read, stays in
    mart_prediction_volume_daily; both count the same fact rows.

    Incremental by day (the daily_mart config in _ml__models.yml): see daily_mart_outcomes.
#}
{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}

with

outcomes as (

    {{ daily_mart_outcomes(recompute_from) }}

),

daily as (

    select
        created_date as metric_date,
        service_name,
        coalesce(model_version, 'unversioned') as model_version,
        count(*)::bigint as prediction_count,
        avg(predicted_value) as avg_predicted_value,
        avg(confidence) as avg_confidence,
        max(last_ingested_at) as last_ingested_at
    from outcomes
    group by created_date, service_name, coalesce(model_version, 'unversioned')

),

final as (

    select
        {{ surrogate_key(['metric_date', 'service_name', 'model_version']) }}
            as volume_by_version_daily_id,
        metric_date,
        service_name,
        model_version,
        prediction_count,
        prediction_count::double precision
        / sum(prediction_count) over (partition by metric_date, service_name) as traffic_share,
        avg_predicted_value,
        avg_confidence,
        last_ingested_at
    from daily

)

select * from final
