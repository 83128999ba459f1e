-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- Operational tables: writer rejects and health, partition upkeep history, data-quality runs.
-- ml_ops.schema_migrations and ml_ops.migration_log belong to the migration engine, not here.

-- migrate:up
create schema if not exists ml_ops;

create table ml_ops.dead_letters (
    dead_letter_id bigint generated always as identity,
    received_at timestamptz not null default now(),
    source text not null,
    source_line integer null,
    target_table text not null,
    reason text not null,
    payload text not null,
    constraint dead_letters_pkey primary key (dead_letter_id),
    constraint dead_letters_source_line_check check (source_line > 0)
);

create index dead_letters_received_idx on ml_ops.dead_letters (received_at);

comment on table ml_ops.dead_letters is
    'Rows rejected by the writer or by mlwh ingest, kept verbatim with the reason.';
comment on column ml_ops.dead_letters.dead_letter_id is 'Surrogate key.';
comment on column ml_ops.dead_letters.received_at is 'When the row was rejected (UTC).';
comment on column ml_ops.dead_letters.source is 'File path, or writer for the Python writer.';
comment on column ml_ops.dead_letters.source_line is 'Line number in source, for files.';
comment on column ml_ops.dead_letters.target_table is 'Table the row was meant for.';
comment on column ml_ops.dead_letters.reason is 'Why it was rejected (one line).';
comment on column ml_ops.dead_letters.payload is 'The raw line or JSON as received.';

create table ml_ops.writer_stats (
    writer_stats_id bigint generated always as identity,
    recorded_at timestamptz not null default now(),
    writer_id text not null,
    host text not null,
    pid integer not null,
    queued integer not null,
    written bigint not null,
    spilled bigint not null,
    replayed bigint not null,
    rejected bigint not null,
    duplicates bigint not null default 0,
    flush_p50_ms double precision null,
    flush_p95_ms double precision null,
    flush_p99_ms double precision null,
    constraint writer_stats_pkey primary key (writer_stats_id),
    constraint writer_stats_counts_check check (
        queued >= 0 and written >= 0 and spilled >= 0 and replayed >= 0 and rejected >= 0
        and duplicates >= 0
    ),
    constraint writer_stats_flush_check check (
        flush_p50_ms >= 0 and flush_p95_ms >= 0 and flush_p99_ms >= 0
    )
);

create index writer_stats_writer_recorded_idx on ml_ops.writer_stats (writer_id, recorded_at);

comment on table ml_ops.writer_stats is
    'Periodic health snapshots of each writer (alert when the queue exceeds 200).';
comment on column ml_ops.writer_stats.writer_stats_id is 'Surrogate key.';
comment on column ml_ops.writer_stats.recorded_at is 'Snapshot time (UTC).';
comment on column ml_ops.writer_stats.writer_id is 'Writer instance id.';
comment on column ml_ops.writer_stats.host is 'Host the writer runs on.';
comment on column ml_ops.writer_stats.pid is 'Process id of the writer.';
comment on column ml_ops.writer_stats.queued is 'Rows waiting in memory at snapshot time.';
comment on column ml_ops.writer_stats.written is 'Rows written since start.';
comment on column ml_ops.writer_stats.spilled is 'Rows spilled to disk since start.';
comment on column ml_ops.writer_stats.replayed is 'Spilled rows replayed since start.';
comment on column ml_ops.writer_stats.rejected is 'Rows sent to dead_letters since start.';
comment on column ml_ops.writer_stats.duplicates is 'Rows skipped as already present.';
comment on column ml_ops.writer_stats.flush_p50_ms is 'Median flush time (ms).';
comment on column ml_ops.writer_stats.flush_p95_ms is '95th percentile flush time (ms).';
comment on column ml_ops.writer_stats.flush_p99_ms is '99th percentile flush time (ms).';

create table ml_ops.partition_log (
    partition_log_id bigint generated always as identity,
    run_id uuid not null,
    logged_at timestamptz not null default now(),
    operation text not null,
    is_dry_run boolean not null,
    parent_table text not null,
    partition_name text null,
    action text not null,
    lower_bound timestamptz null,
    upper_bound timestamptz null,
    rows_affected bigint null,
    detail jsonb not null default '{}',
    constraint partition_log_pkey primary key (partition_log_id),
    constraint partition_log_operation_check check (operation in ('ensure', 'retention')),
    constraint partition_log_action_check check (
        action in ('create', 'drop', 'archive', 'aggregate')
    ),
    constraint partition_log_bounds_check check (upper_bound > lower_bound)
);

create index partition_log_run_idx on ml_ops.partition_log (run_id);

comment on table ml_ops.partition_log is
    'History of partition upkeep: one row per partition created (ensure_partitions) or retired '
    '(apply_retention), including dry runs (is_dry_run) so the runner can report the plan.';
comment on column ml_ops.partition_log.partition_log_id is 'Surrogate key.';
comment on column ml_ops.partition_log.run_id is 'One macro call (dbt invocation_id by default).';
comment on column ml_ops.partition_log.logged_at is 'When the action was taken or planned.';
comment on column ml_ops.partition_log.operation is 'ensure or retention.';
comment on column ml_ops.partition_log.is_dry_run is 'True when only planned.';
comment on column ml_ops.partition_log.parent_table is 'Partitioned table, schema-qualified.';
comment on column ml_ops.partition_log.partition_name is 'The partition created or retired.';
comment on column ml_ops.partition_log.action is 'create, drop, archive or aggregate.';
comment on column ml_ops.partition_log.lower_bound is 'Partition lower bound (inclusive).';
comment on column ml_ops.partition_log.upper_bound is 'Partition upper bound (exclusive).';
comment on column ml_ops.partition_log.rows_affected is
    'Rows moved out of the default partition (create) or rows retired (retention).';
comment on column ml_ops.partition_log.detail is 'Extra facts, e.g. the archive table name.';

create table ml_ops.data_quality_checks (
    data_quality_check_id bigint generated always as identity,
    run_id uuid not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz null,
    status text not null default 'running',
    checks_total integer not null default 0,
    checks_passed integer not null default 0,
    checks_warned integer not null default 0,
    checks_failed integer not null default 0,
    checks_errored integer not null default 0,
    quality_score double precision null,
    details jsonb not null default '{}',
    constraint data_quality_checks_pkey primary key (data_quality_check_id),
    constraint data_quality_checks_run_id_key unique (run_id),
    constraint data_quality_checks_status_check check (
        status in ('running', 'pass', 'warn', 'fail', 'error')
    ),
    constraint data_quality_checks_counts_check check (
        checks_passed >= 0 and checks_warned >= 0 and checks_failed >= 0
        and checks_errored >= 0
        and checks_passed + checks_warned + checks_failed + checks_errored <= checks_total
    ),
    constraint data_quality_checks_score_check check (quality_score between 0 and 1),
    constraint data_quality_checks_finished_check check (finished_at >= started_at),
    constraint data_quality_checks_details_check check (jsonb_typeof(details) = 'object')
);

create index data_quality_checks_started_idx on ml_ops.data_quality_checks (started_at);

comment on table ml_ops.data_quality_checks is
    'One row per data-quality run (alert when the score is below 0.9). The '
    'results of the individual checks are kept by the checks runner.';
comment on column ml_ops.data_quality_checks.data_quality_check_id is 'Surrogate key.';
comment on column ml_ops.data_quality_checks.run_id is 'Id of the run.';
comment on column ml_ops.data_quality_checks.started_at is 'When the run started (UTC).';
comment on column ml_ops.data_quality_checks.finished_at is 'When it finished, null while running.';
comment on column ml_ops.data_quality_checks.status is 'running, pass, warn, fail or error.';
comment on column ml_ops.data_quality_checks.checks_total is 'Checks in the run.';
comment on column ml_ops.data_quality_checks.checks_passed is 'Checks that passed.';
comment on column ml_ops.data_quality_checks.checks_warned is 'Checks that warned.';
comment on column ml_ops.data_quality_checks.checks_failed is 'Checks that failed.';
comment on column ml_ops.data_quality_checks.checks_errored is 'Checks that could not run.';
comment on column ml_ops.data_quality_checks.quality_score is 'Score in [0, 1].';
comment on column ml_ops.data_quality_checks.details is 'Run details as a JSON object.';

-- migrate:down
drop table ml_ops.data_quality_checks;
drop table ml_ops.partition_log;
drop table ml_ops.writer_stats;
drop table ml_ops.dead_letters;
