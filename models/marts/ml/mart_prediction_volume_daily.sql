{#
    The "prediction volume" monitoring query (docs/requirements.md#monitoring-queries):
    predictions per day and service, with the mean predicted
    value and confidence.

    Incremental by day: a run recomputes, whole (delete+insert on metric_date), every day from
    the oldest one with a prediction that changed since this mart's last_ingested_at, or that
    may have expired since (daily_mart_recompute_from).
#}
{{
    config(
        materialized='incremental',
        unique_key='metric_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        contract={'enforced': true},
    )
}}

{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}

with

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}
    {% if is_incremental() %}
        where created_at >= {{ recompute_from }}::timestamp at time zone 'UTC'
    {% endif %}

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
