-- squawk: two new, empty tables and their grants; nothing existing is locked, scanned or
-- rewritten, and the engine runs the file in one transaction with lock_timeout set. The down
-- drops only what up created. integer columns are bounded (an interval in seconds).
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- What `mlwh serve` keeps in the database (docs/requirements.md#http-api, #serve-scheduler).
--
-- api_keys: one row per API key of the HTTP ingestion API. A key is 32 random bytes, so its
-- sha256 is all that is stored (a slow password hash adds nothing against guessing 256 bits,
-- and every request looks a key up); `mlwh keys create SERVICE` prints the key once. A key fixes
-- its service: the server refuses a row that names another (403). Revoking sets revoked_at;
-- the row stays, so `mlwh keys list` shows who had access and until when. The server looks keys
-- up as mlwh_ingest, the role it writes with (docs/requirements.md#least-privilege): SELECT
-- only, so a compromised server reads hashes and can neither mint nor revive a key.
--
-- job_runs: one row per run of a scheduled job (partitions, dbt build, checks, retention,
-- maintenance, cache purge), written as mlwh_maintainer by whichever server took the job's
-- advisory lock. Each run records the interval it ran under, so that mart_monitoring_alerts
-- can tell a job that fell behind (no start within twice its interval) from one that is idle
-- by design.

-- migrate:up
create table ml_ops.api_keys (
    key_id uuid not null,
    service_name text not null,
    key_prefix text not null,
    key_sha256 bytea not null,
    created_at timestamptz not null default now(),
    created_by text not null default current_user,
    revoked_at timestamptz null,
    constraint api_keys_pkey primary key (key_id),
    constraint api_keys_key_sha256_key unique (key_sha256),
    constraint api_keys_service_name_check check (
        service_name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' and length(service_name) <= 64
    ),
    constraint api_keys_key_check check (
        octet_length(key_sha256) = 32 and length(key_prefix) between 8 and 16
    ),
    constraint api_keys_revoked_at_check check (revoked_at is null or revoked_at >= created_at)
);

comment on table ml_ops.api_keys is
    'API keys of the HTTP ingestion API (mlwh serve), one per row, stored as their sha256; a '
    'key writes the rows of one service. `mlwh keys create|list|revoke` manage them.';
comment on column ml_ops.api_keys.key_id is 'The key''s id (what `mlwh keys revoke` takes).';
comment on column ml_ops.api_keys.service_name is 'The service whose rows the key may write.';
comment on column ml_ops.api_keys.key_prefix is
    'The first characters of the key, to recognise it in lists; not enough to use it.';
comment on column ml_ops.api_keys.key_sha256 is 'sha256 of the whole key.';
comment on column ml_ops.api_keys.created_at is 'When the key was created.';
comment on column ml_ops.api_keys.created_by is 'The database role that created it.';
comment on column ml_ops.api_keys.revoked_at is 'When it was revoked; null while it is valid.';

create table ml_ops.job_runs (
    run_id uuid not null,
    job_name text not null,
    server_id text not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz null,
    status text not null,
    interval_seconds integer not null,
    summary text null,
    error text null,
    constraint job_runs_pkey primary key (run_id),
    constraint job_runs_status_check check (status in ('running', 'ok', 'failed')),
    constraint job_runs_interval_check check (interval_seconds > 0),
    constraint job_runs_finished_at_check check (finished_at is null or finished_at >= started_at)
);

create index job_runs_job_name_started_at_idx on ml_ops.job_runs (job_name, started_at desc);

comment on table ml_ops.job_runs is
    'One row per run of a job of the mlwh serve scheduler, whichever server ran it.';
comment on column ml_ops.job_runs.run_id is 'The run''s id.';
comment on column ml_ops.job_runs.job_name is
    'partitions, dbt_build, check, retention, maintenance or cache_purge.';
comment on column ml_ops.job_runs.server_id is 'host-pid of the server that ran it.';
comment on column ml_ops.job_runs.started_at is 'When the run started.';
comment on column ml_ops.job_runs.finished_at is 'When it ended; null while it runs.';
comment on column ml_ops.job_runs.status is 'running, ok or failed.';
comment on column ml_ops.job_runs.interval_seconds is 'The job''s interval when it ran.';
comment on column ml_ops.job_runs.summary is 'One line on what the run did.';
comment on column ml_ops.job_runs.error is 'Why it failed, in one line.';

grant select on ml_ops.api_keys to mlwh_ingest;
grant select, insert, update (finished_at, status, summary, error) on ml_ops.job_runs
to mlwh_maintainer;

-- migrate:down
drop table ml_ops.job_runs;
drop table ml_ops.api_keys;
