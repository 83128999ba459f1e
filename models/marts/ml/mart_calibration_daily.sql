{#
    Reliability diagram per day, service, prediction type and model version: labeled predictions
    with a confidence fall in 10 equal-width bins (confidence 1.0 joins the top bin). `gap` is
    |observed share correct - mean confidence|; mart_performance_daily turns the bins into ECE
    (count-weighted mean gap) and MCE (largest gap).

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

binned as (

    select
        created_date as metric_date,
        service_name,
        prediction_type,
        confidence,
        is_correct,
        coalesce(model_version, 'unversioned') as model_version,
        least(width_bucket(confidence, 0, 1, 10), 10) as bin_number
    from outcomes
    where
        label_status = 'labeled'
        and confidence is not null
        and is_correct is not null

),

bins as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        bin_number,
        count(*)::bigint as prediction_count,
        avg(confidence) as mean_confidence,
        avg(is_correct::integer::double precision) as observed_share_correct
    from binned
    group by metric_date, service_name, prediction_type, model_version, bin_number

),

final as (

    select
        {{ surrogate_key([
            'metric_date', 'service_name', 'prediction_type', 'model_version', 'bin_number'
        ]) }} as calibration_bin_id,
        metric_date,
        service_name,
        prediction_type,
        model_version,
        bin_number,
        (bin_number - 1) / 10.0::double precision as bin_lower,
        bin_number / 10.0::double precision as bin_upper,
        prediction_count,
        mean_confidence,
        observed_share_correct,
        abs(observed_share_correct - mean_confidence) as gap
    from bins

)

select * from final
