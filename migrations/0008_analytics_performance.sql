-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The learning schema's analytics tables (docs/requirements.md#source-learning-schema) beside
-- learning_events (0003): system metrics, query logs, resource utilization (partitioned) and
-- capacity planning, plus the ml_archive tables their retention aggregates into.

-- migrate:up
create table ml_raw.system_performance_metrics (
    system_metric_id uuid not null default gen_random_uuid(),
    recorded_at timestamptz not null,
    component text not null,
    metric_name text not null,
    metric_value double precision not null,
    unit text null,
    host text null,
    tags jsonb not null default '{}',
    constraint system_performance_metrics_pkey primary key (system_metric_id, recorded_at),
    constraint system_performance_metrics_value_check check (
        metric_value <> 'NaN' and metric_value not in ('Infinity', '-Infinity')
    ),
    constraint system_performance_metrics_tags_check check (jsonb_typeof(tags) = 'object')
) partition by range (recorded_at);

create table ml_raw.system_performance_metrics_default
    partition of ml_raw.system_performance_metrics default;

create index system_performance_metrics_component_idx
    on ml_raw.system_performance_metrics (component, metric_name, recorded_at);

create table ml_archive.system_performance_metrics_daily (
    metric_date date not null,
    component text not null,
    metric_name text not null,
    row_count bigint not null,
    metric_value_sum double precision not null,
    metric_value_min double precision not null,
    metric_value_max double precision not null,
    aggregated_at timestamptz not null default now()
);

create index system_performance_metrics_daily_date_idx
    on ml_archive.system_performance_metrics_daily (metric_date, component, metric_name);

create table ml_raw.query_performance_logs (
    query_log_id uuid not null default gen_random_uuid(),
    executed_at timestamptz not null,
    query_hash text not null,
    query_text text null,
    database_name text null,
    user_name text null,
    duration_ms double precision not null,
    rows_returned bigint null,
    plan jsonb null,
    context jsonb not null default '{}',
    constraint query_performance_logs_pkey primary key (query_log_id, executed_at),
    constraint query_performance_logs_duration_check check (
        duration_ms >= 0 and duration_ms < 'Infinity'
    ),
    constraint query_performance_logs_rows_check check (rows_returned >= 0),
    constraint query_performance_logs_context_check check (jsonb_typeof(context) = 'object')
) partition by range (executed_at);

create table ml_raw.query_performance_logs_default
    partition of ml_raw.query_performance_logs default;

-- docs/requirements.md#alert-query-slowdown: timings per query over time
create index query_performance_logs_hash_idx
    on ml_raw.query_performance_logs (query_hash, executed_at);

create table ml_raw.resource_utilization (
    resource_utilization_id uuid not null default gen_random_uuid(),
    recorded_at timestamptz not null,
    host text not null,
    resource_type text not null,
    utilization_pct double precision not null,
    used_value double precision null,
    capacity_value double precision null,
    unit text null,
    constraint resource_utilization_pkey primary key (resource_utilization_id, recorded_at),
    constraint resource_utilization_pct_check check (utilization_pct between 0 and 100),
    constraint resource_utilization_values_check check (
        used_value >= 0 and used_value < 'Infinity'
        and capacity_value >= 0 and capacity_value < 'Infinity'
    )
) partition by range (recorded_at);

create table ml_raw.resource_utilization_default
    partition of ml_raw.resource_utilization default;

-- docs/requirements.md#alert-resources
create index resource_utilization_host_idx
    on ml_raw.resource_utilization (host, resource_type, recorded_at);

create table ml_archive.resource_utilization_daily (
    usage_date date not null,
    host text not null,
    resource_type text not null,
    row_count bigint not null,
    utilization_pct_sum double precision not null,
    utilization_pct_min double precision not null,
    utilization_pct_max double precision not null,
    aggregated_at timestamptz not null default now()
);

create index resource_utilization_daily_date_idx
    on ml_archive.resource_utilization_daily (usage_date, host, resource_type);

create table ml_raw.capacity_planning_metrics (
    capacity_metric_id uuid not null default gen_random_uuid(),
    measured_date date not null,
    resource_type text not null,
    current_usage double precision not null,
    capacity_limit double precision null,
    growth_rate double precision null,
    projected_usage double precision null,
    projection_horizon_days integer null,
    projected_exhaustion_date date null,
    model_details jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint capacity_planning_metrics_pkey primary key (capacity_metric_id),
    constraint capacity_planning_metrics_key unique (measured_date, resource_type),
    constraint capacity_planning_metrics_values_check check (
        current_usage >= 0 and current_usage < 'Infinity'
        and capacity_limit > 0 and capacity_limit < 'Infinity'
        and growth_rate <> 'NaN' and growth_rate not in ('Infinity', '-Infinity')
        and projected_usage >= 0 and projected_usage < 'Infinity'
    ),
    constraint capacity_planning_metrics_horizon_check check (projection_horizon_days > 0),
    constraint capacity_planning_metrics_json_check check (
        jsonb_typeof(model_details) = 'object'
    )
);

-- migrate:down
drop table ml_raw.capacity_planning_metrics;
drop table ml_archive.resource_utilization_daily;
drop table ml_raw.resource_utilization;
drop table ml_raw.query_performance_logs;
drop table ml_archive.system_performance_metrics_daily;
drop table ml_raw.system_performance_metrics;
