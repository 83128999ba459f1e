-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-schema, require-lock-timeout, require-statement-timeout
-- Schemas of the warehouse's own tables.
-- ml_raw: landing tables written by services and the writer (the only schema dbt reads as a source).
-- ml_ops: operational bookkeeping. The migration engine creates it first (schema_migrations),
--         so this migration only makes sure it exists and never drops it.
-- ml_archive: partitions moved out of ml_raw by retention, and the daily aggregates it keeps.

-- migrate:up
create schema if not exists ml_ops;
create schema ml_raw;
create schema ml_archive;

comment on schema ml_raw is
    'Landing tables written by services (append-mostly, time-partitioned), dbt source ml_raw.';
comment on schema ml_archive is
    'Partitions detached by retention (action archive) and daily aggregates (action aggregate).';

-- migrate:down
-- ml_archive is dropped without cascade: it refuses while archived partitions are still in it.
drop schema ml_archive;
drop schema ml_raw;
