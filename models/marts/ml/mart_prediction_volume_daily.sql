{#
    The "prediction volume" monitoring query (docs/requirements.md#monitoring-queries):
    predictions per day and service, with the mean predicted
    value and confidence.

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
        count(*)::bigint as prediction_count,
        avg(predicted_value) as avg_predicted_value,
        avg(confidence) as avg_confidence,
        min(created_at) as first_prediction_at,
        max(created_at) as last_prediction_at,
        max(last_ingested_at) as last_ingested_at
    from outcomes
    group by created_date, service_name

),

final as (

    select
        {{ surrogate_key(['metric_date', 'service_name']) }} as volume_daily_id,
        metric_date,
        service_name,
        prediction_count,
        avg_predicted_value,
        avg_confidence,
        first_prediction_at,
        last_prediction_at,
        last_ingested_at
    from daily

)

select * from final
