{#
    The alerts raised by the warehouse's own operation, from staging alone (so marts and the
    report never derive them again; docs/requirements.md#alert-thresholds), in the columns of
    mart_monitoring_alerts, which unions them with the alerts that read marts:
    - writer queue above alert_writer_queue_max and 95th percentile flush time above
      alert_write_latency_ms, in the latest snapshot of each writer of the last day (warn);
    - maintenance (docs/requirements.md#alert-maintenance): each warn or error finding of the
      latest completed `mlwh maintain` run that the run did not fix (its own severity); no
      completed run for alert_maintenance_max_age_hours (warn, once maintenance has run at
      all); the latest run failed (error);
    - learning-event lag: events of the last day still unprocessed after
      alert_learning_lag_minutes, per service (warn);
    - data quality: the latest finished `mlwh check` run scored under alert_dq_score_min (warn);
    - resources: a host's latest sample of the last hour of a resource above
      alert_resource_max_pct percent (warn);
    - query slowdown: a query family's mean time over the last day above
      alert_query_slowdown_ratio times its mean over the 7 days before, each from at least
      alert_query_min_runs timings (warn).
    A view, so that the alerts view reads it live.
#}
{{ config(materialized='view') }}

{%- set writer_queue_max = var('alert_writer_queue_max') | int -%}
{%- set maintenance_max_age_hours = var('alert_maintenance_max_age_hours') -%}
{%- set write_latency_ms = var('alert_write_latency_ms') -%}
{%- set learning_lag_minutes = var('alert_learning_lag_minutes') -%}
{%- set dq_score_min = var('alert_dq_score_min') -%}
{%- set resource_max_pct = var('alert_resource_max_pct') -%}
{%- set query_slowdown_ratio = var('alert_query_slowdown_ratio') -%}
{%- set query_min_runs = var('alert_query_min_runs') | int -%}

with

writer_stats as (

    select * from {{ ref('stg_ml_ops__writer_stats') }}

),

maintenance_runs as (

    select * from {{ ref('stg_ml_ops__maintenance_runs') }}

),

maintenance_findings as (

    select * from {{ ref('stg_ml_ops__maintenance_findings') }}

),

learning_events as (

    select * from {{ ref('stg_ml_raw__learning_events') }}

),

dq_runs as (

    select * from {{ ref('stg_ml_ops__data_quality_checks') }}

),

resource_samples as (

    select * from {{ ref('stg_ml_raw__resource_utilization') }}

),

query_logs as (

    select * from {{ ref('stg_ml_raw__query_performance_logs') }}

),

latest_writer_stats as (

    select distinct on (writer_id)
        writer_id,
        host,
        recorded_at,
        queued,
        flush_p95_ms
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

write_latencies as (

    select
        'writer' as entity_type,
        writer_id as entity,
        'write_latency_p95_ms' as metric,
        'latest snapshot' as alert_window,
        flush_p95_ms as observed_value,
        {{ write_latency_ms }}::double precision as threshold,
        'warn' as severity,
        recorded_at as since,
        (recorded_at at time zone 'UTC')::date as alert_date,
        'host ' || host as detail
    from latest_writer_stats
    where flush_p95_ms > {{ write_latency_ms }}

),

completed_maintenance_runs as (

    select * from maintenance_runs
    where run_status in ('clean', 'findings', 'failed')

),

latest_maintenance_run as (

    select * from completed_maintenance_runs
    order by started_at desc
    limit 1

),

maintenance_open_findings as (

    select
        'database_object' as entity_type,
        findings.object_name as entity,
        'maintenance_finding' as metric,
        'latest maintenance run' as alert_window,
        coalesce(findings.observed_value, 1) as observed_value,
        coalesce(findings.threshold, 0) as threshold,
        findings.severity,
        findings.found_at as since,
        (findings.found_at at time zone 'UTC')::date as alert_date,
        findings.finding_kind as detail
    from maintenance_findings as findings
    inner join latest_maintenance_run as latest
        on findings.maintenance_run_id = latest.maintenance_run_id
    where findings.severity in ('warn', 'error') and not findings.is_fixed

),

maintenance_overdue as (

    select
        'database' as entity_type,
        current_database()::text as entity,
        'hours_since_maintenance' as metric,
        'last completed run' as alert_window,
        extract(epoch from now() - max(started_at)) / 3600 as observed_value,
        {{ maintenance_max_age_hours }}::double precision as threshold,
        'warn' as severity,
        max(started_at) + {{ maintenance_max_age_hours }} * interval '1 hour' as since,
        (now() at time zone 'UTC')::date as alert_date,
        null::text as detail
    from completed_maintenance_runs
    having max(started_at) < now() - {{ maintenance_max_age_hours }} * interval '1 hour'

),

maintenance_failures as (

    select
        'database' as entity_type,
        current_database()::text as entity,
        'maintenance_run_failed' as metric,
        'latest completed run' as alert_window,
        1::double precision as observed_value,
        0::double precision as threshold,
        'error' as severity,
        started_at as since,
        (started_at at time zone 'UTC')::date as alert_date,
        run_error as detail
    from latest_maintenance_run
    where run_status = 'failed'

),

learning_lags as (

    select
        'service' as entity_type,
        coalesce(service_name, 'unknown') as entity,
        'learning_event_lag_minutes' as metric,
        'oldest unprocessed event of the last day' as alert_window,
        extract(epoch from now() - min(occurred_at)) / 60 as observed_value,
        {{ learning_lag_minutes }}::double precision as threshold,
        'warn' as severity,
        min(occurred_at) + {{ learning_lag_minutes }} * interval '1 minute' as since,
        (now() at time zone 'UTC')::date as alert_date,
        count(*) || ' unprocessed events' as detail
    from learning_events
    where processed_at is null
        and occurred_at > now() - interval '1 day'
        and occurred_at < now() - {{ learning_lag_minutes }} * interval '1 minute'
    group by coalesce(service_name, 'unknown')

),

latest_dq_run as (

    select * from dq_runs
    where finished_at is not null and quality_score is not null
    order by started_at desc
    limit 1

),

data_quality as (

    select
        'database' as entity_type,
        current_database()::text as entity,
        'data_quality_score' as metric,
        'latest mlwh check run' as alert_window,
        quality_score as observed_value,
        {{ dq_score_min }}::double precision as threshold,
        'warn' as severity,
        finished_at as since,
        (finished_at at time zone 'UTC')::date as alert_date,
        checks_failed || ' failed, ' || checks_warned || ' warned of ' || checks_total
        || ' checks' as detail
    from latest_dq_run
    where quality_score < {{ dq_score_min }}

),

latest_resource_samples as (

    select distinct on (host, resource_type)
        host,
        resource_type,
        recorded_at,
        utilization_pct
    from resource_samples
    where recorded_at > now() - interval '1 hour'
    order by host asc, resource_type asc, recorded_at desc

),

resource_use as (

    select
        'host' as entity_type,
        host as entity,
        'resource_utilization_pct' as metric,
        'latest sample of the last hour' as alert_window,
        utilization_pct as observed_value,
        {{ resource_max_pct }}::double precision as threshold,
        'warn' as severity,
        recorded_at as since,
        (recorded_at at time zone 'UTC')::date as alert_date,
        resource_type as detail
    from latest_resource_samples
    where utilization_pct > {{ resource_max_pct }}

),

query_families as (

    select
        query_hash,
        avg(duration_ms) filter (
            where executed_at > now() - interval '1 day'
        ) as recent_ms,
        count(*) filter (where executed_at > now() - interval '1 day') as recent_runs,
        avg(duration_ms) filter (
            where executed_at <= now() - interval '1 day'
        ) as baseline_ms,
        count(*) filter (where executed_at <= now() - interval '1 day') as baseline_runs,
        max(executed_at) as last_run_at
    from query_logs
    where executed_at > now() - interval '8 days'
    group by query_hash

),

query_slowdowns as (

    select
        'query' as entity_type,
        query_hash as entity,
        'query_slowdown_ratio' as metric,
        'last day against the 7 days before' as alert_window,
        recent_ms / baseline_ms as observed_value,
        {{ query_slowdown_ratio }}::double precision as threshold,
        'warn' as severity,
        last_run_at as since,
        (last_run_at at time zone 'UTC')::date as alert_date,
        round(recent_ms::numeric, 1) || ' ms against ' || round(baseline_ms::numeric, 1)
        || ' ms' as detail
    from query_families
    where recent_runs >= {{ query_min_runs }}
        and baseline_runs >= {{ query_min_runs }}
        and baseline_ms > 0
        and recent_ms > {{ query_slowdown_ratio }} * baseline_ms

),

alerts as (

    select * from writer_queues
    union all
    select * from write_latencies
    union all
    select * from maintenance_open_findings
    union all
    select * from maintenance_overdue
    union all
    select * from maintenance_failures
    union all
    select * from learning_lags
    union all
    select * from data_quality
    union all
    select * from resource_use
    union all
    select * from query_slowdowns

)

select * from alerts
