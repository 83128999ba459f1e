-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- One model registry (docs/requirements.md#model-registry) serving the learning schema's models
-- (model_type, framework, hyperparameters; #source-learning-schema) and the model repository
-- (model_name, version, model_data bytea, metadata, is_active soft deletion, unique
-- (model_name, version); #source-model-repository).

-- migrate:up
create table ml_raw.ml_models (
    model_id uuid not null default gen_random_uuid(),
    model_name text not null,
    version text not null,
    model_type text null,
    framework text null,
    hyperparameters jsonb not null default '{}',
    model_data bytea null,
    metadata jsonb not null default '{}',
    description text null,
    status text not null default 'registered',
    is_active boolean not null default true,
    created_by text null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deployed_at timestamptz null,
    constraint ml_models_pkey primary key (model_id),
    constraint ml_models_name_version_key unique (model_name, version),
    constraint ml_models_model_name_check check (length(model_name) between 1 and 255),
    constraint ml_models_version_check check (length(version) between 1 and 50),
    constraint ml_models_status_check check (
        status in ('registered', 'training', 'trained', 'deployed', 'deprecated', 'failed')
    ),
    constraint ml_models_hyperparameters_check check (jsonb_typeof(hyperparameters) = 'object'),
    constraint ml_models_metadata_check check (jsonb_typeof(metadata) = 'object'),
    constraint ml_models_updated_at_check check (updated_at >= created_at)
);

-- "load latest version" (docs/requirements.md#model-repository-api) and listing a model's versions
create index ml_models_latest_idx on ml_raw.ml_models (model_name, created_at desc)
    where is_active;

comment on table ml_raw.ml_models is
    'Model registry: one row per (model_name, version), shared by the learning tables and the '
    'model repository. Soft deletion: is_active = false.';
comment on column ml_raw.ml_models.model_id is
    'Primary key, referenced by predictions and training tables.';
comment on column ml_raw.ml_models.model_name is
    'Model name, e.g. fraud-detector.';
comment on column ml_raw.ml_models.version is 'Version label, unique per model_name (e.g. v1.0).';
comment on column ml_raw.ml_models.model_type is 'Kind of model, e.g. pattern_recognition.';
comment on column ml_raw.ml_models.framework is 'Training framework, e.g. scikit-learn.';
comment on column ml_raw.ml_models.hyperparameters is 'Hyperparameters as a JSON object.';
comment on column ml_raw.ml_models.model_data is
    'Serialized model artifact, null when the artifact lives elsewhere.';
comment on column ml_raw.ml_models.metadata is
    'Free metadata: size, dependencies, artifact location (JSON object).';
comment on column ml_raw.ml_models.status is 'Lifecycle: registered, training, trained, ...';
comment on column ml_raw.ml_models.is_active is 'False once soft-deleted.';
comment on column ml_raw.ml_models.created_at is 'When the version was registered (UTC).';

-- migrate:down
drop table ml_raw.ml_models;
