-- runs as: superuser
-- squawk: the tables below are new (nothing existing is locked or scanned), the engine runs the
-- file in one transaction with lock_timeout set, and the down drops only what up created (the
-- two extensions too: a database that had them before this migration loses them on rollback),
-- int and smallint columns are bounded counts, a pid and a step number.
-- squawk-ignore-file ban-drop-extension, ban-drop-table, prefer-bigint-over-int, prefer-bigint-over-smallint, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The history of `mlwh maintain` (docs/requirements.md#maintenance-history): one row per run,
-- one row per finding with what was done about it, and the sizes each run measured, from which
-- growth and bloat rates are learned (docs/requirements.md#maintenance-predictive). amcheck and
-- pgstattuple are installed when the server ships them and the role may create them; without
-- them the integrity and bloat steps estimate and say so.

-- migrate:up
create schema if not exists ml_ops;

do $$
begin
    if exists (select from pg_available_extensions where name = 'amcheck') then
        create extension if not exists amcheck with schema ml_ops;
    end if;
    if exists (select from pg_available_extensions where name = 'pgstattuple') then
        create extension if not exists pgstattuple with schema ml_ops;
    end if;
exception when insufficient_privilege then
    raise notice 'amcheck/pgstattuple not created (%): maintenance estimates instead', sqlerrm;
end
$$;

create table ml_ops.maintenance_runs (
    run_id uuid not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz null,
    status text not null,
    is_apply boolean not null,
    is_forced boolean not null,
    steps text [] not null,
    fail_on text not null,
    findings_count integer not null default 0,
    open_findings_count integer not null default 0,
    highest_severity text null,
    config jsonb not null default '{}',
    results jsonb not null default '{}',
    error text null,
    host text not null,
    pid integer not null,
    constraint maintenance_runs_pkey primary key (run_id),
    constraint maintenance_runs_status_check check (
        status in ('running', 'clean', 'findings', 'failed', 'skipped')
    ),
    constraint maintenance_runs_severity_check check (
        highest_severity in ('info', 'warn', 'error')
        and fail_on in ('info', 'warn', 'error')
    ),
    constraint maintenance_runs_counts_check check (
        findings_count >= 0 and open_findings_count between 0 and findings_count
    ),
    constraint maintenance_runs_json_check check (
        jsonb_typeof(config) = 'object' and jsonb_typeof(results) = 'object'
    )
);

create index maintenance_runs_started_idx on ml_ops.maintenance_runs (started_at);

comment on table ml_ops.maintenance_runs is
    'One row per mlwh maintain run: its mode, the steps it ran, its outcome and results.';
comment on column ml_ops.maintenance_runs.run_id is 'The run.';
comment on column ml_ops.maintenance_runs.started_at is 'When the run started (UTC).';
comment on column ml_ops.maintenance_runs.finished_at is 'When it ended; null while running.';
comment on column ml_ops.maintenance_runs.status is
    'running, clean, findings (open ones at or above fail_on), failed or skipped.';
comment on column ml_ops.maintenance_runs.is_apply is 'True when run with --apply.';
comment on column ml_ops.maintenance_runs.is_forced is 'True when --force ignored the interval.';
comment on column ml_ops.maintenance_runs.steps is 'Ids of the steps selected, in order.';
comment on column ml_ops.maintenance_runs.fail_on is 'Lowest severity that fails the run.';
comment on column ml_ops.maintenance_runs.findings_count is 'Findings recorded by the run.';
comment on column ml_ops.maintenance_runs.open_findings_count is
    'Findings at or above fail_on that the run did not fix.';
comment on column ml_ops.maintenance_runs.highest_severity is 'Worst severity found, if any.';
comment on column ml_ops.maintenance_runs.config is 'The configuration the run used.';
comment on column ml_ops.maintenance_runs.results is
    'The results dictionary that `mlwh maintain --json` prints, with each step''s status.';
comment on column ml_ops.maintenance_runs.error is 'Why the run failed or was skipped.';
comment on column ml_ops.maintenance_runs.host is 'Host that ran it.';
comment on column ml_ops.maintenance_runs.pid is 'Process id of the runner.';

create table ml_ops.maintenance_findings (
    finding_id bigint generated always as identity,
    run_id uuid not null,
    found_at timestamptz not null default clock_timestamp(),
    step_number smallint not null,
    step_id text not null,
    kind text not null,
    severity text not null,
    object_type text not null,
    object_name text not null,
    observed_value double precision null,
    threshold double precision null,
    is_estimate boolean not null default false,
    detail text not null,
    action text null,
    action_status text not null,
    action_started_at timestamptz null,
    action_finished_at timestamptz null,
    action_error text null,
    facts jsonb not null default '{}',
    constraint maintenance_findings_pkey primary key (finding_id),
    constraint maintenance_findings_run_fkey foreign key (run_id)
        references ml_ops.maintenance_runs (run_id) on delete cascade,
    constraint maintenance_findings_step_check check (step_number between 0 and 17),
    constraint maintenance_findings_severity_check check (
        severity in ('info', 'warn', 'error')
    ),
    constraint maintenance_findings_action_status_check check (
        action_status in ('none', 'proposed', 'running', 'done', 'failed', 'skipped')
    ),
    constraint maintenance_findings_facts_check check (jsonb_typeof(facts) = 'object')
);

create index maintenance_findings_run_idx on ml_ops.maintenance_findings (run_id);
create index maintenance_findings_kind_idx
    on ml_ops.maintenance_findings (kind, object_name, found_at);

comment on table ml_ops.maintenance_findings is
    'One row per problem or fact a maintenance step found, with what was (or would be) done; '
    'an action is recorded as running before it starts and updated when it ends.';
comment on column ml_ops.maintenance_findings.finding_id is 'Surrogate key.';
comment on column ml_ops.maintenance_findings.run_id is 'The run (maintenance_runs).';
comment on column ml_ops.maintenance_findings.found_at is 'When the step found it (UTC).';
comment on column ml_ops.maintenance_findings.step_number is 'Step number, 0 to 17.';
comment on column ml_ops.maintenance_findings.step_id is 'Step id, e.g. invalid_indexes.';
comment on column ml_ops.maintenance_findings.kind is 'What was found, e.g. invalid_index.';
comment on column ml_ops.maintenance_findings.severity is 'info, warn or error.';
comment on column ml_ops.maintenance_findings.object_type is
    'index, table, materialized_view, constraint, session, database or migration.';
comment on column ml_ops.maintenance_findings.object_name is
    'Schema-qualified name, pid of a session, or the database name.';
comment on column ml_ops.maintenance_findings.observed_value is 'The measured value.';
comment on column ml_ops.maintenance_findings.threshold is 'The threshold it was held to.';
comment on column ml_ops.maintenance_findings.is_estimate is
    'True when measured by estimate (the precise extension was not available).';
comment on column ml_ops.maintenance_findings.detail is 'What it is and why it matters.';
comment on column ml_ops.maintenance_findings.action is 'The SQL that fixes it, if any.';
comment on column ml_ops.maintenance_findings.action_status is
    'none (nothing to do), proposed (not applied), running, done, failed or skipped.';
comment on column ml_ops.maintenance_findings.action_started_at is 'When the action began.';
comment on column ml_ops.maintenance_findings.action_finished_at is 'When the action ended.';
comment on column ml_ops.maintenance_findings.action_error is 'Why the action failed or was skipped.';
comment on column ml_ops.maintenance_findings.facts is 'Further facts, e.g. the lock holder.';

create table ml_ops.maintenance_size_history (
    size_history_id bigint generated always as identity,
    run_id uuid not null,
    measured_at timestamptz not null default clock_timestamp(),
    object_type text not null,
    object_name text not null,
    size_bytes bigint not null,
    bloat_share double precision null,
    xid_age bigint null,
    constraint maintenance_size_history_pkey primary key (size_history_id),
    constraint maintenance_size_history_run_fkey foreign key (run_id)
        references ml_ops.maintenance_runs (run_id) on delete cascade,
    constraint maintenance_size_history_type_check check (
        object_type in ('database', 'table', 'index')
    ),
    constraint maintenance_size_history_values_check check (
        size_bytes >= 0 and bloat_share between 0 and 1 and xid_age >= 0
    )
);

create index maintenance_size_history_run_idx on ml_ops.maintenance_size_history (run_id);
create index maintenance_size_history_object_idx
    on ml_ops.maintenance_size_history (object_type, object_name, measured_at);

comment on table ml_ops.maintenance_size_history is
    'Sizes, bloat and transaction-ID age measured by each maintenance run, for growth rates.';
comment on column ml_ops.maintenance_size_history.size_history_id is 'Surrogate key.';
comment on column ml_ops.maintenance_size_history.run_id is 'The run (maintenance_runs).';
comment on column ml_ops.maintenance_size_history.measured_at is 'When measured (UTC).';
comment on column ml_ops.maintenance_size_history.object_type is 'database, table or index.';
comment on column ml_ops.maintenance_size_history.object_name is 'Schema-qualified name.';
comment on column ml_ops.maintenance_size_history.size_bytes is 'Size on disk in bytes.';
comment on column ml_ops.maintenance_size_history.bloat_share is
    'Share of the object that is dead or free space (0 to 1), where measured.';
comment on column ml_ops.maintenance_size_history.xid_age is
    'Transaction-ID age of the database (wraparound distance), for the database row.';

-- least privilege (docs/security.md): migration 0025 made mlwh_owner the owner of everything;
-- this file runs as the superuser (extensions), so it hands its tables over itself. A dry run of
-- `mlwh maintain` runs as mlwh_maintainer; --apply runs as mlwh_owner, which must own what it
-- vacuums, reindexes and drops before PostgreSQL 17, and needs the monitoring roles to see and
-- end other roles' sessions.
alter table ml_ops.maintenance_runs owner to mlwh_owner;
alter table ml_ops.maintenance_findings owner to mlwh_owner;
alter table ml_ops.maintenance_size_history owner to mlwh_owner;
grant select, insert, update on
ml_ops.maintenance_runs, ml_ops.maintenance_findings, ml_ops.maintenance_size_history
to mlwh_maintainer;
grant insert on ml_raw.query_performance_logs to mlwh_maintainer;
grant pg_monitor, pg_signal_backend to mlwh_owner;

do $$
declare
    routine regprocedure;
begin
    for routine in
        select p.oid::regprocedure
        from pg_proc as p
        inner join pg_depend as d on p.oid = d.objid and d.deptype = 'e'
        inner join pg_extension as e on d.refobjid = e.oid
        where e.extname in ('amcheck', 'pgstattuple')
    loop
        execute format('grant execute on function %s to mlwh_owner, mlwh_maintainer', routine);
    end loop;
end
$$;

-- migrate:down
-- (mlwh_owner keeps pg_monitor and pg_signal_backend: like the roles, memberships are the
-- server's, and another database of it may rely on them)
drop table ml_ops.maintenance_size_history;
drop table ml_ops.maintenance_findings;
drop table ml_ops.maintenance_runs;
drop extension if exists pgstattuple;
drop extension if exists amcheck;
