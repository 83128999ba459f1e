{#
    One row per active alert: what is wrong, where, by how much, since when. Every threshold is
    a var of dbt_project.yml or a column of seeds/services.csv, read nowhere else
    (docs/requirements.md#alert-thresholds):
    - service silent (int_service_silences_measured, the one definition of silence): no
      prediction for services.silent_after_minutes (warn), alert_silent_error_minutes (error);
    - error rate over 7 days above alert_error_rate_warn (warn) or above the service's
      services.max_error_rate (error);
    - database above alert_database_max_bytes (warn);
    - drift: the drift_status macro's 'warn' (warn) or 'drift' (error) of predicted_value or
      confidence, for the last two days of mart_drift_daily: PSI above alert_psi_warn /
      alert_psi_error on days with at least drift_alert_min_rows values (a partial day of a
      handful of predictions has a PSI of several units from sampling noise alone, about
      (bins - 1) / n);
    - label coverage collapse: the share labeled within one day, for the newest day whose
      one-day window is over (two days ago), below alert_label_coverage_warn_ratio (warn) /
      alert_label_coverage_error_ratio (error) of its trailing 7-day average;
    - unregistered prediction type: rows refused in the last 7 days because their service/type
      pair is not in ml_ref.prediction_types (a typo, or a new service not yet registered):
      warn from the first such row (docs/requirements.md#registered-services);
    - volume anomaly: yesterday's predictions scored by the volume_anomalies macro, as the
      volume_anomaly test scores them (alert_volume_* vars); an error when the day fell to
      alert_volume_error_ratio of the same-weekday mean or less;
    - accuracy drop: a model version's accuracy on its newest day of the last week (with at
      least alert_accuracy_min_labeled labeled predictions) more than alert_accuracy_drop_ratio
      below its baseline, its accuracy over its first drift_baseline_days days (warn);
    - scheduled jobs of `mlwh serve` (docs/requirements.md#serve-scheduler): the latest
      finished run of a job failed (error); no server started it for alert_job_overdue_intervals
      of its intervals (warn);
    - feature drift, the worst segment and estimated performance: mart_feature_alerts;
    - the operations alerts of int_ops_alerts_raised: writer queue and write latency,
      maintenance findings and runs, learning-event lag, data-quality score, resource use and
      query slowdowns.

    A view, not a table like the other marts: silence, queue and size are read live, so the
    alerts are current whenever `mlwh check` reads them. Drift, coverage and volume come from
    the daily marts and are as fresh as the last `dbt build`.
#}
{{ config(materialized='view') }}

{%- set silent_error_minutes = var('alert_silent_error_minutes') | int -%}
{%- set database_max_bytes = var('alert_database_max_bytes') | int -%}
{%- set psi_warn = var('alert_psi_warn') -%}
{%- set psi_error = var('alert_psi_error') -%}
{%- set coverage_warn_ratio = var('alert_label_coverage_warn_ratio') -%}
{%- set coverage_error_ratio = var('alert_label_coverage_error_ratio') -%}
{%- set history_weeks = var('alert_volume_history_weeks') | int -%}
{%- set min_history_weeks = var('alert_volume_min_history_weeks') | int -%}
{%- set volume_sensitivity = var('alert_volume_sensitivity') -%}
{%- set volume_error_ratio = var('alert_volume_error_ratio') -%}
{%- set error_rate_warn = var('alert_error_rate_warn') -%}
{%- set accuracy_drop_ratio = var('alert_accuracy_drop_ratio') -%}
{%- set accuracy_min_labeled = var('alert_accuracy_min_labeled') | int -%}
{%- set baseline_days = var('drift_baseline_days') | int -%}
{%- set job_overdue_intervals = var('alert_job_overdue_intervals') -%}

with

services as (

    select * from {{ ref('services') }}

),

silences as (

    select * from {{ ref('int_service_silences_measured') }}

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

performance_daily as (

    select * from {{ ref('mart_performance_daily') }}

),

ops_alerts as (

    select * from {{ ref('int_ops_alerts_raised') }}

),

job_runs as (

    select * from {{ ref('stg_ml_ops__job_runs') }}

),

{# feature drift, worst segments, estimated performance (docs/requirements.md#alert-features):
   the columns every alert has; those that locate a feature alert (prediction type, feature,
   segment, model version) stay in mart_feature_alerts #}
feature_alerts as (

    select
        entity_type,
        entity,
        metric,
        alert_window,
        observed_value,
        threshold,
        severity,
        since,
        alert_date,
        detail
    from {{ ref('mart_feature_alerts') }}

),

silent_services as (

    select
        'service' as entity_type,
        service_name as entity,
        'minutes_since_last_prediction' as metric,
        silent_after_minutes || ' minutes' as alert_window,
        minutes_since_last_prediction as observed_value,
        silent_after_minutes::double precision as threshold,
        case
            when minutes_since_last_prediction > {{ silent_error_minutes }} then 'error'
            else 'warn'
        end as severity,
        coalesce(last_prediction_at, now() - interval '7 days')
        + silent_after_minutes * interval '1 minute' as since,
        (coalesce(last_prediction_at, now()) at time zone 'UTC')::date as alert_date,
        null::text as detail
    from silences
    where is_silent

),

error_rates as (

    select
        'service' as entity_type,
        service_name as entity,
        'error_rate_7d' as metric,
        '7 days' as alert_window,
        error_rate_7d as observed_value,
        case
            when is_error_rate_high then max_error_rate else {{ error_rate_warn }}
        end as threshold,
        case when is_error_rate_high then 'error' else 'warn' end as severity,
        refreshed_at as since,
        (refreshed_at at time zone 'UTC')::date as alert_date,
        labeled_7d_count || ' labeled predictions' as detail
    from service_health
    where is_error_rate_high or error_rate_7d > {{ error_rate_warn }}

),

database_size as (

    select
        'database' as entity_type,
        current_database()::text as entity,
        'database_size_bytes' as metric,
        'now' as alert_window,
        {{ warehouse_database_size() }}::double precision as observed_value,
        {{ database_max_bytes }}::double precision as threshold,
        'warn' as severity,
        now() as since,
        (now() at time zone 'UTC')::date as alert_date,
        null::text as detail
    where {{ warehouse_database_size() }} > {{ database_max_bytes }}

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
        case
            when {{ drift_status('psi', 'current_count') }} = 'drift' then 'error' else 'warn'
        end as severity,
        drift_date::timestamptz as since,
        drift_date as alert_date,
        'prediction type ' || prediction_type as detail
    from drift_daily
    where drift_date >= current_date - 1
        and {{ drift_status('psi', 'current_count') }} != 'ok'

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
        {{ coverage_warn_ratio }} * trailing_share as threshold,
        case
            when labeled_within_1d_share < {{ coverage_error_ratio }} * trailing_share
                then 'error'
            else 'warn'
        end as severity,
        metric_date::timestamptz as since,
        metric_date as alert_date,
        'trailing average ' || round(trailing_share::numeric, 3) as detail
    from coverage_trend
    where trailing_share > 0
        and labeled_within_1d_share < {{ coverage_warn_ratio }} * trailing_share

),

volume_counts as (

    select
        volume_daily.service_name as group_value,
        volume_daily.metric_date as event_date,
        volume_daily.prediction_count as row_count
    from volume_daily
    inner join services on volume_daily.service_name = services.service_name
    where services.is_active

),

volume_scored as (

    {{ volume_anomalies(
        'volume_counts', 'current_date - 1', volume_sensitivity, min_history_weeks, history_weeks
    ) }}

),

volume_alerts as (

    select
        'service' as entity_type,
        group_value as entity,
        'daily_prediction_count' as metric,
        'day vs same weekday, {{ history_weeks }} weeks' as alert_window,
        row_count::double precision as observed_value,
        mean_count::double precision as threshold,
        case
            when row_count <= {{ volume_error_ratio }} * mean_count then 'error'
            else 'warn'
        end as severity,
        day::timestamptz as since,
        day as alert_date,
        'z-score ' || round(z_score, 1) as detail
    from volume_scored

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

version_days as (

    select
        service_name,
        prediction_type,
        model_version,
        metric_date,
        accuracy,
        labeled_count,
        min(metric_date) over (
            partition by service_name, prediction_type, model_version
        ) as first_date
    from performance_daily
    where accuracy is not null and model_version is not null and labeled_count > 0

),

accuracy_baselines as (

    select
        service_name,
        prediction_type,
        model_version,
        sum(accuracy * labeled_count) / sum(labeled_count) as baseline_accuracy
    from version_days
    where metric_date < first_date + {{ baseline_days }}
    group by service_name, prediction_type, model_version

),

latest_accuracy as (

    select distinct on (service_name, prediction_type, model_version)
        service_name,
        prediction_type,
        model_version,
        metric_date,
        accuracy
    from version_days
    where metric_date >= current_date - 7
        and metric_date >= first_date + {{ baseline_days }}
        and labeled_count >= {{ accuracy_min_labeled }}
    order by service_name asc, prediction_type asc, model_version asc, metric_date desc

),

accuracy_drops as (

    select
        'service' as entity_type,
        latest.service_name as entity,
        'accuracy_vs_baseline' as metric,
        'newest day against the version''s first {{ baseline_days }} days' as alert_window,
        latest.accuracy as observed_value,
        (1 - {{ accuracy_drop_ratio }}) * baseline.baseline_accuracy as threshold,
        'warn' as severity,
        latest.metric_date::timestamptz as since,
        latest.metric_date as alert_date,
        'model version ' || latest.model_version || ', prediction type '
        || latest.prediction_type as detail
    from latest_accuracy as latest
    inner join accuracy_baselines as baseline
        on
            latest.service_name = baseline.service_name
            and latest.prediction_type = baseline.prediction_type
            and latest.model_version = baseline.model_version
    where latest.accuracy < (1 - {{ accuracy_drop_ratio }}) * baseline.baseline_accuracy

),

latest_job_starts as (

    select distinct on (job_name)
        job_name,
        started_at,
        interval_seconds
    from job_runs
    order by job_name asc, started_at desc

),

latest_job_results as (

    select distinct on (job_name)
        job_name,
        finished_at,
        run_status,
        run_error
    from job_runs
    where finished_at is not null
    order by job_name asc, finished_at desc

),

job_alerts as (

    select
        'job' as entity_type,
        job_name as entity,
        'job_failed' as metric,
        'latest run' as alert_window,
        1::double precision as observed_value,
        0::double precision as threshold,
        'error' as severity,
        finished_at as since,
        (finished_at at time zone 'UTC')::date as alert_date,
        left(run_error, 200) as detail
    from latest_job_results
    where run_status = 'failed'

    union all

    select
        'job' as entity_type,
        job_name as entity,
        'seconds_since_job_start' as metric,
        {{ job_overdue_intervals }} || ' intervals' as alert_window,
        extract(epoch from now() - started_at)::double precision as observed_value,
        {{ job_overdue_intervals }} * interval_seconds::double precision as threshold,
        'warn' as severity,
        started_at + {{ job_overdue_intervals }} * interval_seconds * interval '1 second'
            as since,
        (now() at time zone 'UTC')::date as alert_date,
        'interval ' || interval_seconds || ' s' as detail
    from latest_job_starts
    where now() - started_at > {{ job_overdue_intervals }} * interval_seconds * interval '1 second'

),

alerts as (

    select * from silent_services
    union all
    select * from unregistered_types
    union all
    select * from error_rates
    union all
    select * from database_size
    union all
    select * from drift
    union all
    select * from label_coverage
    union all
    select * from volume_alerts
    union all
    select * from accuracy_drops
    union all
    select * from ops_alerts
    union all
    select * from job_alerts
    union all
    select * from feature_alerts

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
        detail,
        entity_type || ' ' || entity
        || coalesce(' (' || detail || ')', '')
        || ': ' || metric || ' = ' || round(observed_value::numeric, 3)
        || ' vs threshold ' || round(threshold::numeric, 3)
        || ' on ' || alert_date as message
    from alerts

)

select * from final
