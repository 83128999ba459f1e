-- runs as: superuser
-- squawk: a role, a database privilege and an extension; no table is locked, scanned or
-- rewritten. The down drops the extension without CASCADE, so it stops at anything that uses it.
-- squawk-ignore-file ban-drop-extension, prefer-robust-stmts, require-lock-timeout, require-statement-timeout
-- The model repository's group role (docs/requirements.md#model-repository-api) and pgvector for
-- its nearest-neighbour search (docs/requirements.md#model-embeddings-search).
--
-- mlwh_models (NOLOGIN) is what `runner.models.ModelRepository` connects as: the next migration,
-- which runs as mlwh_owner, grants it exactly what the repository needs on the model tables.
-- Roles are cluster-wide, so it is created only when missing and survives a rollback (like
-- 0025's); the down section removes its privileges in this database.
-- Superuser: creating a role, and `vector`, which is not a trusted extension. A server without
-- pgvector gets no extension: the repository then searches exactly, in SQL.

-- migrate:up
do $$
begin
    begin
        create role mlwh_models nologin;
    exception when duplicate_object or unique_violation then
        null;  -- another database of this server created it first
    end;
    execute format('grant connect on database %I to mlwh_models', current_database());
    if exists (select from pg_available_extensions where name = 'vector') then
        create extension if not exists vector with schema public;
    end if;
end
$$;

-- migrate:down
-- restrict, never cascade: an object of someone else's that uses the type stops the rollback
drop extension if exists vector;

-- its privileges here and its CONNECT on this database; it owns nothing
drop owned by mlwh_models;
