-- squawk: the model tables are small registries (a row per model version, per entity, per cache
-- key), so adding checks, a unique key and NOT NULL scans little, and the engine runs the file in
-- one transaction with lock_timeout set. New columns are nullable, without defaults: no rewrite.
-- int columns are bounded counts (versions, epochs, dimensions). Down sections drop only what up
-- created.
-- squawk-ignore-file adding-not-nullable-field, ban-drop-column, ban-drop-constraint, ban-drop-function, ban-drop-table, constraint-missing-not-valid, disallowed-unique-constraint, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- What runner.models.ModelRepository needs of the model tables
-- (docs/requirements.md#model-repository-api), and the privileges of its role mlwh_models.
--
-- ml_models: a version number per name, assigned by a trigger under a per-name counter row, so
-- that concurrent saves get distinct, gap-free numbers (docs/requirements.md#model-versions);
-- the artifact's sha256 and size, checked against the bytes on insert and again on every load
-- (docs/requirements.md#model-artifact-integrity); soft deletion and purge times.
-- model_aliases: champion, challenger, ... pointing at a version; the foreign key forbids
-- removing an aliased version (docs/requirements.md#model-aliases).
-- embedding_types: one dimension per entity type, enforced by a trigger, and a partial HNSW
-- index per type made on demand by ensure_embedding_index() when pgvector is installed
-- (docs/requirements.md#model-embeddings-search).
-- training_metrics: epoch and step, for series (docs/requirements.md#model-training-metrics).

-- migrate:up
alter table ml_raw.ml_models
add column version_number integer null,
add column sha256 text null,
add column size_bytes bigint null,
add column deleted_at timestamptz null,
add column purged_at timestamptz null;

update ml_raw.ml_models as m
set
    version_number = n.version_number,
    sha256 = encode(sha256(m.model_data), 'hex'),
    size_bytes = octet_length(m.model_data)
from (
    select
        model_id,
        row_number() over (partition by model_name order by created_at, version) as version_number
    from ml_raw.ml_models
) as n
where m.model_id = n.model_id;

alter table ml_raw.ml_models alter column version_number set not null;
alter table ml_raw.ml_models
add constraint ml_models_name_version_number_key unique (model_name, version_number),
add constraint ml_models_version_number_check check (version_number > 0),
add constraint ml_models_sha256_check check (sha256 ~ '^[0-9a-f]{64}$'),
add constraint ml_models_size_bytes_check check (size_bytes >= 0),
add constraint ml_models_artifact_check check (
    (model_data is null) = (sha256 is null) or purged_at is not null
);

comment on column ml_raw.ml_models.version_number is
    'Version number per model_name, 1, 2, 3, ... in the order of saving (a trigger assigns it).';
comment on column ml_raw.ml_models.sha256 is
    'Hex sha256 of model_data, checked on insert and on every load.';
comment on column ml_raw.ml_models.size_bytes is 'Size of model_data in bytes when saved.';
comment on column ml_raw.ml_models.deleted_at is 'When the version was soft-deleted (is_active false).';
comment on column ml_raw.ml_models.purged_at is
    'When cleanup removed the artifact (model_data null); the row stays as history.';

create table ml_raw.model_version_counters (
    model_name text not null,
    last_version integer not null,
    constraint model_version_counters_pkey primary key (model_name),
    constraint model_version_counters_last_version_check check (last_version > 0)
);

comment on table ml_raw.model_version_counters is
    'Last version number given per model name: its row lock serializes concurrent saves.';
comment on column ml_raw.model_version_counters.model_name is 'Model name.';
comment on column ml_raw.model_version_counters.last_version is 'Highest version number given.';

insert into ml_raw.model_version_counters (model_name, last_version)
select model_name, max(version_number) from ml_raw.ml_models group by model_name;

create function ml_raw.ml_models_assign_version() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    insert into ml_raw.model_version_counters as c (model_name, last_version)
    values (new.model_name, 1)
    on conflict (model_name) do update set last_version = c.last_version + 1
    returning c.last_version into new.version_number;
    new.version := coalesce(new.version, new.version_number::text);
    if new.model_data is not null then
        new.size_bytes := octet_length(new.model_data);
        if new.sha256 is null then
            new.sha256 := encode(sha256(new.model_data), 'hex');
        elsif new.sha256 <> encode(sha256(new.model_data), 'hex') then
            raise exception using
                errcode = 'data_corrupted',
                message = format(
                    'model %s: the artifact does not match the sha256 it was sent with',
                    new.model_name
                );
        end if;
    end if;
    return new;
end
$$;

comment on function ml_raw.ml_models_assign_version() is
    'Before insert into ml_models: the next version number of the name (and the label when none '
    'is given), the artifact size, and its sha256 computed or checked. Security definer: '
    'writers need no privilege on the counters.';

create trigger ml_models_assign_version before insert on ml_raw.ml_models
for each row execute function ml_raw.ml_models_assign_version();

create table ml_raw.model_aliases (
    model_name text not null,
    alias text not null,
    version text not null,
    set_at timestamptz not null default now(),
    set_by text not null default current_user,
    constraint model_aliases_pkey primary key (model_name, alias),
    constraint model_aliases_version_fkey foreign key (model_name, version)
        references ml_raw.ml_models (model_name, version) on update restrict on delete restrict,
    constraint model_aliases_alias_check check (
        alias ~ '^[a-z][a-z0-9_-]{0,49}$' and alias <> 'latest'
    )
);

create index model_aliases_version_idx on ml_raw.model_aliases (model_name, version);

comment on table ml_raw.model_aliases is
    'Named pointers to a model version (champion, challenger, ...); an aliased version cannot '
    'be deleted.';
comment on column ml_raw.model_aliases.model_name is 'Model name.';
comment on column ml_raw.model_aliases.alias is 'Alias: lowercase letters, digits, _ and -.';
comment on column ml_raw.model_aliases.version is 'The version label it points at.';
comment on column ml_raw.model_aliases.set_at is 'When the alias was last moved.';
comment on column ml_raw.model_aliases.set_by is 'The role that moved it.';

alter table ml_raw.training_metrics
add column epoch integer null,
add column step integer null,
add constraint training_metrics_epoch_check check (epoch >= 0),
add constraint training_metrics_step_check check (step >= 0);

comment on column ml_raw.training_metrics.epoch is 'Training epoch of the row (null: a summary).';
comment on column ml_raw.training_metrics.step is 'Step within the run (null: a summary).';

create table ml_raw.embedding_types (
    entity_type text not null,
    dimension integer not null,
    created_at timestamptz not null default now(),
    constraint embedding_types_pkey primary key (entity_type),
    constraint embedding_types_dimension_check check (dimension between 1 and 16000)
);

comment on table ml_raw.embedding_types is
    'One vector dimension per entity type: the first embedding of a type sets it.';
comment on column ml_raw.embedding_types.entity_type is 'Entity type, e.g. user.';
comment on column ml_raw.embedding_types.dimension is 'Number of dimensions of every vector of it.';
comment on column ml_raw.embedding_types.created_at is 'When the first embedding of it was saved.';

insert into ml_raw.embedding_types (entity_type, dimension)
select entity_type, min(dimension)
from ml_raw.embeddings
group by entity_type
having count(distinct dimension) = 1;

create function ml_raw.embeddings_check_dimension() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    expected integer;
begin
    select t.dimension into expected
    from ml_raw.embedding_types as t where t.entity_type = new.entity_type;
    if expected is null then
        insert into ml_raw.embedding_types (entity_type, dimension)
        values (new.entity_type, new.dimension)
        on conflict (entity_type) do nothing;
        select t.dimension into expected
        from ml_raw.embedding_types as t where t.entity_type = new.entity_type;
    end if;
    if expected <> new.dimension then
        raise exception using
            errcode = 'check_violation',
            message = format(
                'embedding %s/%s has %s dimensions; entity type %s has %s',
                new.entity_type, new.entity_id, new.dimension, new.entity_type, expected
            );
    end if;
    return new;
end
$$;

comment on function ml_raw.embeddings_check_dimension() is
    'Before insert or update of an embedding: its dimension is its entity type''s (the first '
    'embedding of a type registers it). Security definer: writers need no privilege to insert '
    'into embedding_types.';

create trigger embeddings_check_dimension
before insert or update of entity_type, dimension on ml_raw.embeddings
for each row execute function ml_raw.embeddings_check_dimension();

create function ml_raw.ensure_embedding_index(p_entity_type text) returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    dim integer;
    ext_schema name;
    index_name text := 'embeddings_hnsw_' || left(md5(p_entity_type), 16);
begin
    select t.dimension into dim from ml_raw.embedding_types as t where t.entity_type = p_entity_type;
    select n.nspname into ext_schema
    from pg_extension as e inner join pg_namespace as n on e.extnamespace = n.oid
    where e.extname = 'vector';
    -- HNSW indexes vectors of up to 2,000 dimensions; beyond, search is exact. ef_construction
    -- 128 (pgvector's default is 64): a better graph for recall, bench/models.py
    if dim is null or ext_schema is null or dim > 2000 then
        return null;
    end if;
    if to_regclass(format('ml_raw.%I', index_name)) is null then
        perform pg_advisory_xact_lock(hashtext('ml_raw.ensure_embedding_index'));
        execute format(
            'create index if not exists %I on ml_raw.embeddings using hnsw '
            '((embedding::%I.vector(%s)) %I.vector_cosine_ops) with (m = 16, ef_construction = 128) '
            'where entity_type = %L',
            index_name, ext_schema, dim, ext_schema, p_entity_type
        );
    end if;
    return index_name;
end
$$;

comment on function ml_raw.ensure_embedding_index(text) is
    'The partial HNSW index (cosine) over the embeddings of one entity type, created when '
    'missing; null when pgvector is not installed or the type is unknown or too wide. Security '
    'definer: the repository''s role creates no object itself.';

revoke all on function ml_raw.ensure_embedding_index(text) from public;

-- the repository's role: exactly what runner.models needs (docs/security.md)
grant usage on schema ml_raw to mlwh_models;
grant select, insert on ml_raw.ml_models to mlwh_models;
-- versions are immutable: only soft deletion, restore and purge change a row
grant update (is_active, deleted_at, purged_at, model_data, updated_at)
on ml_raw.ml_models to mlwh_models;
grant select, insert, update, delete on ml_raw.model_aliases to mlwh_models;
grant select, insert on ml_raw.training_metrics to mlwh_models;
grant select, insert, update on ml_raw.embeddings to mlwh_models;
grant select on ml_raw.embedding_types to mlwh_models;
grant select, insert, update, delete on ml_raw.prediction_cache to mlwh_models;
grant execute on function ml_raw.ensure_embedding_index(text) to mlwh_models;

do $$
begin
    if current_setting('server_version_num')::integer >= 170000 then
        -- PostgreSQL 17+: optimize_database() may VACUUM and ANALYZE without owning the tables
        execute 'grant maintain on ml_raw.ml_models, ml_raw.model_aliases, ml_raw.embeddings, '
            'ml_raw.prediction_cache, ml_raw.training_metrics to mlwh_models';
    end if;
end
$$;

-- migrate:down
revoke all on ml_raw.ml_models, ml_raw.model_aliases, ml_raw.training_metrics, ml_raw.embeddings,
ml_raw.embedding_types, ml_raw.prediction_cache from mlwh_models;
revoke usage on schema ml_raw from mlwh_models;

do $$
declare
    index_name text;
begin
    for index_name in
        select indexname from pg_indexes
        where schemaname = 'ml_raw' and indexname like 'embeddings\_hnsw\_%'
    loop
        execute format('drop index ml_raw.%I', index_name);
    end loop;
end
$$;

drop function ml_raw.ensure_embedding_index(text);
drop trigger embeddings_check_dimension on ml_raw.embeddings;
drop function ml_raw.embeddings_check_dimension();
drop table ml_raw.embedding_types;

alter table ml_raw.training_metrics
drop constraint training_metrics_step_check,
drop constraint training_metrics_epoch_check,
drop column step,
drop column epoch;

drop table ml_raw.model_aliases;

drop trigger ml_models_assign_version on ml_raw.ml_models;
drop function ml_raw.ml_models_assign_version();
drop table ml_raw.model_version_counters;

alter table ml_raw.ml_models
drop constraint ml_models_artifact_check,
drop constraint ml_models_size_bytes_check,
drop constraint ml_models_sha256_check,
drop constraint ml_models_version_number_check,
drop constraint ml_models_name_version_number_key,
drop column purged_at,
drop column deleted_at,
drop column size_bytes,
drop column sha256,
drop column version_number;
