-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The learning schema's integration tables (docs/requirements.md#source-learning-schema): git and
-- user-session learning events (monthly partitions, service data: 90 days). Its schema_migrations
-- is served by the migration engine's ml_ops.schema_migrations and its data_quality_checks by
-- ml_ops.data_quality_checks (0004), see docs/schema.md.

-- migrate:up
create table ml_raw.git_operation_learning_events (
    git_event_id uuid not null default gen_random_uuid(),
    occurred_at timestamptz not null,
    repository text not null,
    operation_type text not null,
    commit_sha text null,
    branch_name text null,
    author text null,
    files_changed integer null,
    lines_added integer null,
    lines_deleted integer null,
    learning_event_id uuid null,
    metadata jsonb not null default '{}',
    constraint git_operation_learning_events_pkey primary key (git_event_id, occurred_at),
    constraint git_operation_learning_events_operation_check check (
        operation_type in (
            'commit', 'push', 'pull', 'merge', 'rebase', 'branch', 'checkout', 'tag', 'revert',
            'other'
        )
    ),
    constraint git_operation_learning_events_sha_check check (
        commit_sha ~ '^[0-9a-f]{7,64}$'
    ),
    constraint git_operation_learning_events_counts_check check (
        files_changed >= 0 and lines_added >= 0 and lines_deleted >= 0
    ),
    constraint git_operation_learning_events_metadata_check check (
        jsonb_typeof(metadata) = 'object'
    )
) partition by range (occurred_at);

create table ml_raw.git_operation_learning_events_default
    partition of ml_raw.git_operation_learning_events default;

create index git_operation_learning_events_repo_idx
    on ml_raw.git_operation_learning_events (repository, occurred_at);

create table ml_raw.user_session_learning_events (
    user_session_event_id uuid not null default gen_random_uuid(),
    occurred_at timestamptz not null,
    session_id text not null,
    user_id text null,
    event_type text not null,
    feature text null,
    duration_ms double precision null,
    learning_event_id uuid null,
    payload jsonb not null default '{}',
    constraint user_session_learning_events_pkey
        primary key (user_session_event_id, occurred_at),
    constraint user_session_learning_events_duration_check check (
        duration_ms >= 0 and duration_ms < 'Infinity'
    ),
    constraint user_session_learning_events_payload_check check (
        jsonb_typeof(payload) = 'object'
    )
) partition by range (occurred_at);

create table ml_raw.user_session_learning_events_default
    partition of ml_raw.user_session_learning_events default;

create index user_session_learning_events_session_idx
    on ml_raw.user_session_learning_events (session_id, occurred_at);
create index user_session_learning_events_user_idx
    on ml_raw.user_session_learning_events (user_id, occurred_at);

-- migrate:down
drop table ml_raw.user_session_learning_events;
drop table ml_raw.git_operation_learning_events;
