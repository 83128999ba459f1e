{#
    One row per active alert: what is wrong, where, by how much, since when.

    Thresholds (docs/requirements.md#alerts-mart and the alert-* entries there):
    - service silent: no prediction for services.silent_after_minutes (warn), 6 hours (error);
    - error rate over 7 days above services.max_error_rate (warn);
    - writer queue above 200 in the latest snapshot of each writer of the last day (warn);
    - database above 10 GB (warn);
    - drift: PSI of predicted_value or confidence above 0.1 (warn) / 0.25 (error), for the
      last two days of mart_drift_daily, on days with at least drift_alert_min_rows (100)
      values: a partial day of a handful of predictions has a PSI of several units from
      sampling noise alone (about (bins - 1) / n: 0.09 at 100 values, under the warn
      threshold);
    - label coverage collapse: the share labeled within one day, for the newest day whose
      one-day window is over (two days ago), below 50% (warn) / 10% (error) of its trailing
      7-day average;
    - unregistered prediction type: rows refused in the last 7 days because their service/type
      pair is not in ml_ref.prediction_types (a typo, or a new service not yet registered):
      warn from the first such row (docs/requirements.md#registered-services);
    - volume anomaly: yesterday's predictions against the same weekday of the previous 8 weeks,
      |z| above 3 with at least 4 weeks of history (error when the day dropped by 90% or more).

    A view, not a table like the other marts: silence, queue and size are read live, so the
    alerts are current whenever `mlwh check` reads them. Drift, coverage and volume come from
    the daily marts and are as fresh as the last `dbt build`.
#}
{{ config(materialized='view') }}

{%- set warn_silent_error_minutes = 360 -%}
{%- set writer_queue_max = 200 -%}
{%- set database_max_bytes = var('alert_database_max_bytes', 10 * 1024 * 1024 * 1024) | int -%}
{%- set drift_min_rows = var('drift_alert_min_rows', 100) | int -%}
{%- set psi_warn = 0.1 -%}
{%- set psi_error = 0.25 -%}
{%- set history_weeks = 8 -%}
{%- set min_history_weeks = 4 -%}
{%- set volume_sensitivity = 3 -%}

with

services as (

    select * from {{ ref('services') }}

),

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}

),

writer_stats as (

    select * from {{ ref('stg_ml_ops__writer_stats') }}

),

dead_letters as (

    select * from {{ ref('stg_ml_ops__dead_letters') }}

),

service_health as (

    select * from {{ ref('mart_service_health') }}

),

drift_daily as (

    select * from {{ ref('mart_drift_daily') }}

),

label_coverage_daily as (

    select * from {{ ref('mart_label_coverage_daily') }}

),

volume_daily as (

    select * from {{ ref('mart_prediction_volume_daily') }}

),

last_predictions as (

    {# bounded to a week so the scan prunes partitions; older means "silent for a week+" #}
    select
        service_name,
        max(created_at) as last_prediction_at
    from predictions
    where created_at > now() - interval '7 days'
    group by service_name

),

silent_services as (

    select
        'service' as entity_type,
        services.service_name as entity,
        'minutes_since_last_prediction' as metric,
        services.silent_after_minutes || ' minutes' as alert_window,
        extract(epoch from now() - coalesce(
            last_predictions.last_prediction_at, now() - interval '7 days'
        )) / 60.0 as observed_value,
        services.silent_after_minutes::double precision as threshold,
        case
            when last_predictions.last_prediction_at is null
                or now() - last_predictions.last_prediction_at
                > interval '{{ warn_silent_error_minutes }} minutes'
                then 'error'
            else 'warn'
        end as severity,
        coalesce(last_predictions.last_prediction_at, now() - interval '7 days')
        + services.silent_after_minutes * interval '1 minute' as since,
        (coalesce(last_predictions.last_prediction_at, now()) at time zone 'UTC')::date
            as alert_date,
        null::text as detail
    from services
    left join last_predictions on services.service_name = last_predictions.service_name
    where services.is_active
        and coalesce(
            now() - last_predictions.last_prediction_at
            > services.silent_after_minutes * interval '1 minute',
            true
        )

),

error_rates as (

    select
        'service' as entity_type,
        service_name as entity,
        'error_rate_7d' as metric,
        '7 days' as alert_window,
        error_rate_7d as observed_value,
        max_error_rate as threshold,
        'warn' as severity,
        refreshed_at as since,
        (refreshed_at at time zone 'UTC')::date as alert_date,
        labeled_7d_count || ' labeled predictions' as detail
    from service_health
    where is_error_rate_high

),

latest_writer_stats as (

    select distinct on (writer_id)
        writer_id,
        host,
        recorded_at,
        queued
    from writer_stats
    where recorded_at > now() - interval '1 day'
    order by writer_id asc, recorded_at desc

),

writer_queues as (

    select
        'writer' as entity_type,
        writer_id as entity,
        'writer_queue' as metric,
        'latest snapshot' as alert_window,
        queued::double precision as observed_value,
        {{ writer_queue_max }}::double precision as threshold,
        'warn' as severity,
        recorded_at as since,
        (recorded_at at time zone 'UTC')::date as alert_date,
        'host ' || host as detail
    from latest_writer_stats
    where queued > {{ writer_queue_max }}

),

database_size as (

    select
        'database' as entity_type,
        current_database()::text as entity,
        'database_size_bytes' as metric,
        'now' as alert_window,
        pg_database_size(current_database())::double precision as observed_value,
        {{ database_max_bytes }}::double precision as threshold,
        'warn' as severity,
        now() as since,
        (now() at time zone 'UTC')::date as alert_date,
        null::text as detail
    where pg_database_size(current_database()) > {{ database_max_bytes }}

),

drift as (

    select
        'service' as entity_type,
        service_name as entity,
        'psi_' || feature_name as metric,
        '{{ var("drift_reference_days") }} days reference' as alert_window,
        psi as observed_value,
        case when psi > {{ psi_error }} then {{ psi_error }} else {{ psi_warn }} end
            as threshold,
        case when psi > {{ psi_error }} then 'error' else 'warn' end as severity,
        drift_date::timestamptz as since,
        drift_date as alert_date,
        'prediction type ' || prediction_type as detail
    from drift_daily
    where drift_date >= current_date - 1
        and psi > {{ psi_warn }}
        and current_count >= {{ drift_min_rows }}

),

coverage_by_service as (

    select
        metric_date,
        service_name,
        sum(labeled_within_1d_share * prediction_count) / sum(prediction_count)
            as labeled_within_1d_share
    from label_coverage_daily
    where metric_date between current_date - 9 and current_date - 2
    group by metric_date, service_name

),

coverage_trend as (

    select
        checked_day.service_name,
        checked_day.metric_date,
        checked_day.labeled_within_1d_share,
        avg(previous_days.labeled_within_1d_share) as trailing_share
    from coverage_by_service as checked_day
    inner join coverage_by_service as previous_days
        on
            checked_day.service_name = previous_days.service_name
            and checked_day.metric_date > previous_days.metric_date
    where checked_day.metric_date = current_date - 2
    group by
        checked_day.service_name,
        checked_day.metric_date,
        checked_day.labeled_within_1d_share

),

label_coverage as (

    select
        'service' as entity_type,
        service_name as entity,
        'labeled_within_1d_share' as metric,
        '1 day, against trailing 7 days' as alert_window,
        labeled_within_1d_share as observed_value,
        0.5 * trailing_share as threshold,
        case
            when labeled_within_1d_share < 0.1 * trailing_share then 'error'
            else 'warn'
        end as severity,
        metric_date::timestamptz as since,
        metric_date as alert_date,
        'trailing average ' || round(trailing_share::numeric, 3) as detail
    from coverage_trend
    where trailing_share > 0
        and labeled_within_1d_share < 0.5 * trailing_share

),

volume_days as (

    select
        services.service_name,
        weekdays.volume_date::date as volume_date,
        coalesce(volume_daily.prediction_count, 0)::double precision as prediction_count
    from services
    cross join
        generate_series(
            current_date - {{ history_weeks * 7 + 1 }}, current_date - 1, interval '7 days'
        ) as weekdays (volume_date)
    left join volume_daily
        on
            services.service_name = volume_daily.service_name
            and weekdays.volume_date::date = volume_daily.metric_date
    where services.is_active

),

volume_history as (

    select
        service_name,
        count(*) filter (where prediction_count > 0) as history_weeks,
        avg(prediction_count) filter (where prediction_count > 0) as mean_count,
        stddev_samp(prediction_count) filter (where prediction_count > 0) as stddev_count
    from volume_days
    where volume_date < current_date - 1
    group by service_name

),

volume_scored as (

    select
        volume_days.service_name,
        volume_days.volume_date,
        volume_days.prediction_count,
        volume_history.history_weeks,
        volume_history.mean_count,
        (volume_days.prediction_count - volume_history.mean_count)
        / greatest(volume_history.stddev_count, 1.0, 0.05 * volume_history.mean_count)
            as z_score
    from volume_days
    inner join volume_history on volume_days.service_name = volume_history.service_name
    where volume_days.volume_date = current_date - 1

),

volume_anomalies as (

    select
        'service' as entity_type,
        service_name as entity,
        'daily_prediction_count' as metric,
        'day vs same weekday, {{ history_weeks }} weeks' as alert_window,
        prediction_count as observed_value,
        mean_count as threshold,
        case when prediction_count <= 0.1 * mean_count then 'error' else 'warn' end
            as severity,
        volume_date::timestamptz as since,
        volume_date as alert_date,
        'z-score ' || round(z_score::numeric, 1) as detail
    from volume_scored
    where history_weeks >= {{ min_history_weeks }}
        and abs(z_score) > {{ volume_sensitivity }}

),

unregistered_types as (

    select
        'prediction_type' as entity_type,
        unregistered_prediction_type as entity,
        'unregistered_prediction_type' as metric,
        '7 days' as alert_window,
        count(*)::double precision as observed_value,
        0::double precision as threshold,
        'warn' as severity,
        min(received_at) as since,
        (max(received_at) at time zone 'UTC')::date as alert_date,
        'rows refused; register it in seeds/prediction_types.csv' as detail
    from dead_letters
    where unregistered_prediction_type is not null
        and received_at > now() - interval '7 days'
    group by unregistered_prediction_type

),

alerts as (

    select * from silent_services
    union all
    select * from unregistered_types
    union all
    select * from error_rates
    union all
    select * from writer_queues
    union all
    select * from database_size
    union all
    select * from drift
    union all
    select * from label_coverage
    union all
    select * from volume_anomalies

),

final as (

    select
        {{ surrogate_key(['metric', 'entity_type', 'entity', 'detail', 'alert_date']) }}
            as alert_id,
        entity_type,
        entity,
        metric,
        alert_window,
        observed_value,
        threshold,
        severity,
        since,
        alert_date,
        entity_type || ' ' || entity
        || coalesce(' (' || detail || ')', '')
        || ': ' || metric || ' = ' || round(observed_value::numeric, 3)
        || ' vs threshold ' || round(threshold::numeric, 3)
        || ' on ' || alert_date as message
    from alerts

)

select * from final
