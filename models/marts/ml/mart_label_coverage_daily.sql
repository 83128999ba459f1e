{#
    When can a day's metrics be trusted? Per day (of the prediction), service and prediction
    type: the share of predictions labeled within 1, 7 and 30 days of being made, and the
    median and 95th percentile of the label lag (first outcome - prediction), in seconds.

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
        prediction_type,
        count(*)::bigint as prediction_count,
        count(*) filter (where label_status = 'labeled')::bigint as labeled_count,
        count(*) filter (where label_status = 'pending')::bigint as pending_count,
        count(*) filter (where label_lag_seconds <= 86400)::bigint as labeled_within_1d_count,
        count(*) filter (where label_lag_seconds <= 7 * 86400)::bigint as labeled_within_7d_count,
        count(*) filter (where label_lag_seconds <= 30 * 86400)::bigint
            as labeled_within_30d_count,
        percentile_cont(0.5) within group (order by label_lag_seconds) as median_label_lag_seconds,
        percentile_cont(0.95) within group (order by label_lag_seconds) as p95_label_lag_seconds,
        max(last_ingested_at) as last_ingested_at
    from outcomes
    group by created_date, service_name, prediction_type

),

final as (

    select
        {{ surrogate_key(['metric_date', 'service_name', 'prediction_type']) }}
            as label_coverage_daily_id,
        metric_date,
        service_name,
        prediction_type,
        prediction_count,
        labeled_count,
        pending_count,
        labeled_count::double precision / prediction_count as labeled_share,
        labeled_within_1d_count::double precision / prediction_count as labeled_within_1d_share,
        labeled_within_7d_count::double precision / prediction_count as labeled_within_7d_share,
        labeled_within_30d_count::double precision / prediction_count
            as labeled_within_30d_share,
        median_label_lag_seconds,
        p95_label_lag_seconds,
        last_ingested_at
    from daily

)

select * from final
