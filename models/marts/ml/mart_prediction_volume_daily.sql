{#
    Seed 000's "prediction volume": predictions per day and service, with the mean predicted
    value and confidence.

    Incremental by day: fct_prediction_outcomes only changes predictions made within
    label_lookback_days of its newest one, so a run recomputes the days from the newest day
    already here minus label_lookback_days + 1 (the extra day absorbs a DST hour in the
    fact table's interval arithmetic) and replaces them whole (delete+insert on metric_date).
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
        max(created_at) as last_prediction_at
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
        last_prediction_at
    from daily

)

select * from final
