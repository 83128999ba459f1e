-- squawk: the table below is new (nothing existing is locked or scanned), the engine runs the
-- file in one transaction with lock_timeout set, and the down drops only what up created.
-- squawk-ignore-file ban-drop-table, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- One row per check result per `mlwh check` run (docs/requirements.md#dq-history): the history that
-- ml_marts.mart_dq_history charts. Runs are summarised in ml_ops.data_quality_checks (0004).

-- migrate:up
create schema if not exists ml_ops;

create table ml_ops.dq_results (
    dq_result_id bigint generated always as identity,
    run_id uuid not null,
    checked_at timestamptz not null default now(),
    check_name text not null,
    node text not null,
    resource_type text not null,
    severity text not null,
    status text not null,
    failing_rows bigint null,
    observed_value double precision null,
    threshold text null,
    message text null,
    execution_seconds double precision null,
    constraint dq_results_pkey primary key (dq_result_id),
    constraint dq_results_severity_check check (severity in ('warn', 'error')),
    constraint dq_results_status_check check (status in ('pass', 'warn', 'fail', 'error')),
    constraint dq_results_resource_type_check check (resource_type in ('test', 'source'))
);

create index dq_results_run_idx on ml_ops.dq_results (run_id);
create index dq_results_checked_idx on ml_ops.dq_results (checked_at);

comment on table ml_ops.dq_results is
    'One row per data-quality check result per mlwh check run; appended, never replaced.';
comment on column ml_ops.dq_results.dq_result_id is 'Surrogate key.';
comment on column ml_ops.dq_results.run_id is 'The run (ml_ops.data_quality_checks.run_id).';
comment on column ml_ops.dq_results.checked_at is 'When the run checked (UTC).';
comment on column ml_ops.dq_results.check_name is 'Test or source-freshness name.';
comment on column ml_ops.dq_results.node is 'dbt unique_id of the test or source.';
comment on column ml_ops.dq_results.resource_type is 'test or source (freshness).';
comment on column ml_ops.dq_results.severity is 'Configured severity: warn or error.';
comment on column ml_ops.dq_results.status is 'pass, warn, fail or error (could not run).';
comment on column ml_ops.dq_results.failing_rows is 'Rows the test returned (null: n/a).';
comment on column ml_ops.dq_results.observed_value is 'Measured value (e.g. age in seconds).';
comment on column ml_ops.dq_results.threshold is 'The threshold the value was held to.';
comment on column ml_ops.dq_results.message is 'What failed, naming services and days.';
comment on column ml_ops.dq_results.execution_seconds is 'Seconds the check took.';

-- migrate:down
drop table ml_ops.dq_results;
