-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The model repository's storage (docs/requirements.md#source-model-repository) beside ml_models
-- (0002): embeddings, the prediction cache and training metrics.

-- migrate:up
create table ml_raw.embeddings (
    embedding_id uuid not null default gen_random_uuid(),
    entity_type text not null,
    entity_id text not null,
    embedding double precision [] not null,
    dimension integer not null,
    model_id uuid null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint embeddings_pkey primary key (embedding_id),
    constraint embeddings_entity_key unique (entity_type, entity_id),
    constraint embeddings_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id) on delete set null,
    constraint embeddings_entity_type_check check (length(entity_type) between 1 and 50),
    constraint embeddings_entity_id_check check (length(entity_id) between 1 and 255),
    -- dimension validation (docs/requirements.md#model-embeddings-search): a flat vector of exactly
    -- `dimension` finite numbers
    constraint embeddings_dimension_check check (
        dimension > 0
        and array_ndims(embedding) = 1
        and cardinality(embedding) = dimension
        and array_position(embedding, null) is null
        and 'NaN' <> all(embedding)
        and 'Infinity' <> all(embedding)
        and '-Infinity' <> all(embedding)
    ),
    constraint embeddings_updated_check check (updated_at >= created_at)
);

create index embeddings_model_idx on ml_raw.embeddings (model_id);

create table ml_raw.prediction_cache (
    prediction_cache_id uuid not null default gen_random_uuid(),
    cache_key text not null,
    predictions bytea not null,
    metadata jsonb not null default '{}',
    cached_at timestamptz not null default now(),
    expires_at timestamptz not null,
    access_count integer not null default 0,
    last_accessed_at timestamptz null,
    constraint prediction_cache_pkey primary key (prediction_cache_id),
    constraint prediction_cache_cache_key_key unique (cache_key),
    constraint prediction_cache_cache_key_check check (length(cache_key) between 1 and 512),
    constraint prediction_cache_expires_after_cached check (expires_at > cached_at),
    constraint prediction_cache_access_count_check check (access_count >= 0),
    constraint prediction_cache_metadata_check check (jsonb_typeof(metadata) = 'object')
);

-- automatic expiration (docs/requirements.md#model-cache): delete where expires_at < now()
create index prediction_cache_expires_idx on ml_raw.prediction_cache (expires_at);
-- pattern-based clearing (cache_key like 'user123_%')
create index prediction_cache_key_pattern_idx
    on ml_raw.prediction_cache (cache_key text_pattern_ops);

create table ml_raw.training_metrics (
    training_metric_id uuid not null default gen_random_uuid(),
    model_id uuid not null,
    training_session_id uuid null,
    metrics jsonb not null,
    trained_at timestamptz not null default now(),
    constraint training_metrics_pkey primary key (training_metric_id),
    constraint training_metrics_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id) on delete cascade,
    constraint training_metrics_training_session_id_fkey foreign key (training_session_id)
        references ml_raw.model_training_sessions (training_session_id) on delete set null,
    -- metrics are numeric and finite (docs/requirements.md#model-training-metrics): JSON numbers
    -- cannot be NaN or infinite
    constraint training_metrics_metrics_check check (
        jsonb_typeof(metrics) = 'object'
        and not jsonb_path_exists(metrics, '$.* ? (@.type() != "number")')
    )
);

create index training_metrics_model_idx on ml_raw.training_metrics (model_id, trained_at);
create index training_metrics_session_idx on ml_raw.training_metrics (training_session_id);

-- migrate:down
drop table ml_raw.training_metrics;
drop table ml_raw.prediction_cache;
drop table ml_raw.embeddings;
