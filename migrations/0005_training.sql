-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The learning schema's training tables (docs/requirements.md#source-learning-schema) beside
-- ml_models: datasets, training sessions, evaluations and the feature store.

-- migrate:up
create table ml_raw.training_datasets (
    dataset_id uuid not null default gen_random_uuid(),
    dataset_name text not null,
    version text not null default '1',
    description text null,
    data_location text null,
    source_query text null,
    row_count bigint null,
    feature_count integer null,
    schema_definition jsonb not null default '{}',
    statistics jsonb not null default '{}',
    quality_score double precision null,
    created_at timestamptz not null default now(),
    constraint training_datasets_pkey primary key (dataset_id),
    constraint training_datasets_name_version_key unique (dataset_name, version),
    constraint training_datasets_counts_check check (row_count >= 0 and feature_count >= 0),
    constraint training_datasets_quality_score_check check (quality_score between 0 and 1),
    constraint training_datasets_schema_check check (
        jsonb_typeof(schema_definition) = 'object' and jsonb_typeof(statistics) = 'object'
    )
);

create table ml_raw.model_training_sessions (
    training_session_id uuid not null default gen_random_uuid(),
    model_id uuid not null,
    dataset_id uuid null,
    status text not null default 'queued',
    total_epochs integer null,
    completed_epochs integer not null default 0,
    hyperparameters jsonb not null default '{}',
    training_loss double precision null,
    validation_loss double precision null,
    metrics jsonb not null default '{}',
    started_at timestamptz not null default now(),
    finished_at timestamptz null,
    error_message text null,
    constraint model_training_sessions_pkey primary key (training_session_id),
    constraint model_training_sessions_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id) on delete cascade,
    constraint model_training_sessions_dataset_id_fkey foreign key (dataset_id)
        references ml_raw.training_datasets (dataset_id),
    constraint model_training_sessions_status_check check (
        status in ('queued', 'running', 'completed', 'failed', 'cancelled')
    ),
    constraint model_training_sessions_epochs_check check (
        total_epochs > 0 and completed_epochs >= 0 and completed_epochs <= total_epochs
    ),
    constraint model_training_sessions_loss_check check (
        training_loss <> 'NaN' and training_loss not in ('Infinity', '-Infinity')
        and validation_loss <> 'NaN' and validation_loss not in ('Infinity', '-Infinity')
    ),
    constraint model_training_sessions_finished_check check (finished_at >= started_at),
    constraint model_training_sessions_json_check check (
        jsonb_typeof(hyperparameters) = 'object' and jsonb_typeof(metrics) = 'object'
    )
);

create index model_training_sessions_model_idx
    on ml_raw.model_training_sessions (model_id, started_at);
create index model_training_sessions_dataset_idx on ml_raw.model_training_sessions (dataset_id);

create table ml_raw.model_evaluations (
    evaluation_id uuid not null default gen_random_uuid(),
    model_id uuid not null,
    dataset_id uuid null,
    training_session_id uuid null,
    evaluation_type text not null default 'holdout',
    accuracy double precision null,
    precision_score double precision null,
    recall double precision null,
    f1_score double precision null,
    metrics jsonb not null default '{}',
    evaluated_at timestamptz not null default now(),
    constraint model_evaluations_pkey primary key (evaluation_id),
    constraint model_evaluations_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id) on delete cascade,
    constraint model_evaluations_dataset_id_fkey foreign key (dataset_id)
        references ml_raw.training_datasets (dataset_id),
    constraint model_evaluations_training_session_id_fkey foreign key (training_session_id)
        references ml_raw.model_training_sessions (training_session_id),
    constraint model_evaluations_scores_check check (
        accuracy between 0 and 1 and precision_score between 0 and 1
        and recall between 0 and 1 and f1_score between 0 and 1
    ),
    constraint model_evaluations_metrics_check check (
        jsonb_typeof(metrics) = 'object'
        and not jsonb_path_exists(metrics, '$.* ? (@.type() != "number")')
    )
);

-- docs/requirements.md#alert-accuracy-drop: evaluations of a model over time
create index model_evaluations_model_idx on ml_raw.model_evaluations (model_id, evaluated_at);
create index model_evaluations_dataset_idx on ml_raw.model_evaluations (dataset_id);
create index model_evaluations_session_idx on ml_raw.model_evaluations (training_session_id);

create table ml_raw.feature_store (
    feature_id uuid not null default gen_random_uuid(),
    feature_group text not null default 'default',
    feature_name text not null,
    entity_type text not null,
    entity_id text not null,
    feature_value jsonb not null,
    version integer not null default 1,
    computed_at timestamptz not null default now(),
    valid_until timestamptz null,
    constraint feature_store_pkey primary key (feature_id),
    constraint feature_store_entity_feature_key
        unique (entity_type, entity_id, feature_group, feature_name, version),
    constraint feature_store_version_check check (version > 0),
    constraint feature_store_valid_check check (valid_until > computed_at)
);

create index feature_store_feature_idx
    on ml_raw.feature_store (feature_group, feature_name, computed_at);

-- migrate:down
drop table ml_raw.feature_store;
drop table ml_raw.model_evaluations;
drop table ml_raw.model_training_sessions;
drop table ml_raw.training_datasets;
