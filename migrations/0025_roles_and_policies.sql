-- runs as: superuser
-- squawk: roles, ownership and policies change no row and rewrite no table; ALTER ... OWNER and
-- ENABLE ROW LEVEL SECURITY take brief locks inside the engine's one transaction with
-- lock_timeout set. Filling the registry's new service_name column reads ml_predictions once.
-- squawk-ignore-file ban-drop-table, ban-drop-column, prefer-robust-stmts, require-lock-timeout, require-statement-timeout, adding-not-nullable-field, ban-drop-function
-- Least privilege (docs/requirements.md#least-privilege), row-level security per service
-- (docs/requirements.md#service-isolation) and the audit log (docs/requirements.md#audit-log).
--
-- Group roles (NOLOGIN; login roles are members of them, see docs/security.md):
--   mlwh_owner       owns the schemas and every object in them; migrations and dbt run as it
--   mlwh_ingest      the trusted writer: inserts into ml_raw (BYPASSRLS, so COPY works)
--   mlwh_service     parent of the per-service roles mlwh_svc_<service>; reads and inserts only
--                    the rows of its own services, under row-level security
--   mlwh_analyst     reads the marts and reference data (granted by dbt's grants config)
--   mlwh_maintainer  pg_monitor, pg_signal_backend (and pg_maintain where the server has it)
-- Roles are cluster-wide, so several databases of one server share them: this file creates
-- them only when missing, and the down section removes their privileges and policies in this
-- database but keeps the roles and their members (logins made for services and people), so
-- that migrating up again restores everyone's access.
-- It must run as a superuser: only a superuser may create a BYPASSRLS role or an event trigger.
-- Every later migration runs as mlwh_owner (the engine sets the role).

-- migrate:up
do $$
declare
    role_name text;
begin
    foreach role_name in array array[
        'mlwh_owner', 'mlwh_ingest', 'mlwh_service', 'mlwh_analyst', 'mlwh_maintainer'
    ] loop
        begin
            execute format('create role %I nologin', role_name);
        exception when duplicate_object or unique_violation then
            null;  -- another database of this server created it first
        end;
    end loop;
end
$$;

alter role mlwh_ingest bypassrls;

do $$
declare
    service_role text;
begin
    -- service roles survive a rollback of this file (they are the server's): re-attach them
    for service_role in select rolname from pg_roles where rolname like 'mlwh\_svc\_%' loop
        execute format('grant mlwh_service to %I', service_role);
    end loop;
end
$$;
grant pg_monitor, pg_signal_backend to mlwh_maintainer;

do $$
begin
    if to_regrole('pg_maintain') is not null then  -- PostgreSQL 17+: VACUUM/REINDEX without owning
        grant pg_maintain to mlwh_maintainer;
    end if;
    execute format(
        'grant connect, create, temporary on database %I to mlwh_owner', current_database()
    );
    execute format(
        'grant connect on database %I to mlwh_ingest, mlwh_service, mlwh_analyst, mlwh_maintainer',
        current_database()
    );
end
$$;

-- the registry knows each id's service, so outcomes can be checked against it
alter table ml_raw.prediction_ids add column service_name text;

update ml_raw.prediction_ids as r
set service_name = p.service_name
from ml_raw.ml_predictions as p
where p.prediction_id = r.prediction_id and p.created_at = r.created_at;

comment on column ml_raw.prediction_ids.service_name is
    'Service of the stored prediction: row-level security lets a service see its own ids only.';

create or replace function ml_raw.ml_predictions_register() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    bad record;
begin
    insert into ml_raw.prediction_ids (prediction_id, created_at, service_name)
    select prediction_id, created_at, service_name from inserted;

    if to_regclass('ml_ref.prediction_types') is not null then
        -- one group per service and type: the check costs a hash aggregate, not a join per row
        select
            g.service_name,
            g.prediction_type,
            case when g.low < t.value_min then g.low else g.high end as predicted_value,
            t.value_min,
            t.value_max,
            t.prediction_type is null as is_unregistered
        into bad
        from (
            select
                service_name,
                prediction_type,
                min(predicted_value) as low,
                max(predicted_value) as high
            from inserted
            group by service_name, prediction_type
        ) as g
        left join ml_ref.prediction_types as t
            on g.prediction_type = t.prediction_type and g.service_name = t.service_name
        where
            t.prediction_type is null
            or g.low < t.value_min
            or g.high > t.value_max
        limit 1;
        if found and bad.is_unregistered then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'unregistered prediction type: %s/%s is not in ml_ref.prediction_types',
                    bad.service_name, bad.prediction_type
                ),
                hint = 'add it to seeds/prediction_types.csv and run dbt seed';
        elsif found then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'predicted_value %s is outside [%s, %s] for %s/%s',
                    bad.predicted_value, bad.value_min, bad.value_max,
                    bad.service_name, bad.prediction_type
                );
        end if;
    end if;
    return null;
end
$$;

comment on function ml_raw.ml_predictions_register() is
    'After each INSERT/COPY into ml_raw.ml_predictions: registers the ids with their service (a '
    'repeated id fails the statement) and checks service/type registration and value bounds '
    'against ml_ref. Security definer: a service role needs no privilege on the registry.';

create function ml_ops.current_services() returns text []
language sql
stable
set search_path = pg_catalog
as $$
    select coalesce(array_agg(substr(rolname, 10) order by rolname), '{}')
    from pg_roles
    where rolname like 'mlwh\_svc\_%' and pg_has_role(current_user, oid, 'USAGE')
$$;

comment on function ml_ops.current_services() is
    'The services whose rows the current role may read and insert: one per role mlwh_svc_<service> '
    'it belongs to. Row-level security policies call it once per statement.';

-- row-level security: a service reads and inserts its own rows; nobody's policy allows UPDATE or
-- DELETE (the log is append-only). The owner and mlwh_ingest (BYPASSRLS) are not subject to it.
alter table ml_raw.ml_predictions enable row level security;
create policy service_reads_own on ml_raw.ml_predictions for select to mlwh_service
using (service_name = any((select ml_ops.current_services())::text []));
create policy service_inserts_own on ml_raw.ml_predictions for insert to mlwh_service
with check (service_name = any((select ml_ops.current_services())::text []));

alter table ml_raw.ml_feedback enable row level security;
create policy service_reads_own on ml_raw.ml_feedback for select to mlwh_service
using (service_name = any((select ml_ops.current_services())::text []));
create policy service_inserts_own on ml_raw.ml_feedback for insert to mlwh_service
with check (service_name = any((select ml_ops.current_services())::text []));

alter table ml_raw.ml_performance_metrics enable row level security;
create policy service_reads_own on ml_raw.ml_performance_metrics for select to mlwh_service
using (service_name = any((select ml_ops.current_services())::text []));
create policy service_inserts_own on ml_raw.ml_performance_metrics for insert to mlwh_service
with check (service_name = any((select ml_ops.current_services())::text []));

alter table ml_raw.learning_events enable row level security;
create policy service_reads_own on ml_raw.learning_events for select to mlwh_service
using (service_name = any((select ml_ops.current_services())::text []));
create policy service_inserts_own on ml_raw.learning_events for insert to mlwh_service
with check (service_name = any((select ml_ops.current_services())::text []));

alter table ml_raw.prediction_ids enable row level security;
create policy service_reads_own on ml_raw.prediction_ids for select to mlwh_service
using (service_name = any((select ml_ops.current_services())::text []));

-- an outcome belongs to the service of its prediction
alter table ml_raw.ml_prediction_outcomes enable row level security;
create policy service_reads_own on ml_raw.ml_prediction_outcomes for select to mlwh_service
using (exists (
    select 1 from ml_raw.prediction_ids as r
    where
        r.prediction_id = ml_prediction_outcomes.prediction_id
        and r.service_name = any((select ml_ops.current_services())::text [])
));
create policy service_inserts_own on ml_raw.ml_prediction_outcomes for insert to mlwh_service
with check (exists (
    select 1 from ml_raw.prediction_ids as r
    where
        r.prediction_id = ml_prediction_outcomes.prediction_id
        and r.service_name = any((select ml_ops.current_services())::text [])
));

-- the audit log: DDL by anyone, with who, when and what
create table ml_ops.audit_log (
    audit_id bigint generated always as identity primary key,
    occurred_at timestamptz not null default clock_timestamp(),
    session_role text not null default session_user,
    current_role_name text not null default current_user,
    client_addr inet default inet_client_addr(),
    application_name text default current_setting('application_name', true),
    event text not null,
    command_tag text not null,
    object_type text,
    object_identity text
);

comment on table ml_ops.audit_log is
    'Who changed what and when: every DDL command and drop (an event trigger), and the role '
    'changes made by `mlwh services`, `mlwh users` and password rotation.';
comment on column ml_ops.audit_log.audit_id is 'Surrogate key.';
comment on column ml_ops.audit_log.occurred_at is 'When the command ran (clock time).';
comment on column ml_ops.audit_log.session_role is 'The login role of the session.';
comment on column ml_ops.audit_log.current_role_name is 'The role the command ran as.';
comment on column ml_ops.audit_log.client_addr is 'Client address (null on a Unix socket).';
comment on column ml_ops.audit_log.application_name is 'application_name of the session.';
comment on column ml_ops.audit_log.event is
    'ddl_command_end, sql_drop, or role_change (written by mlwh).';
comment on column ml_ops.audit_log.command_tag is 'The command, e.g. CREATE TABLE, GRANT.';
comment on column ml_ops.audit_log.object_type is 'Type of the object concerned.';
comment on column ml_ops.audit_log.object_identity is 'Qualified name of the object concerned.';

create function ml_ops.audit_ddl() returns event_trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_event = 'sql_drop' then
        insert into ml_ops.audit_log (
            session_role, current_role_name, event, command_tag, object_type, object_identity
        )
        select
            session_user, coalesce(nullif(current_setting('role'), 'none'), session_user),
            tg_event, tg_tag, object_type, object_identity
        from pg_event_trigger_dropped_objects()
        where not is_temporary and original;
    else
        insert into ml_ops.audit_log (
            session_role, current_role_name, event, command_tag, object_type, object_identity
        )
        select
            session_user, coalesce(nullif(current_setting('role'), 'none'), session_user),
            tg_event, command_tag, object_type, object_identity
        from pg_event_trigger_ddl_commands()
        where schema_name is distinct from 'pg_temp' and not in_extension;
    end if;
end
$$;

comment on function ml_ops.audit_ddl() is
    'Event trigger function: one ml_ops.audit_log row per DDL command or dropped object.';

create event trigger mlwh_audit_ddl on ddl_command_end
execute function ml_ops.audit_ddl();

create event trigger mlwh_audit_drop on sql_drop
execute function ml_ops.audit_ddl();

-- ownership: everything in the ml_* schemas moves to mlwh_owner
do $$
declare
    obj record;
begin
    for obj in select nspname from pg_namespace where nspname like 'ml\_%' loop
        execute format('alter schema %I owner to mlwh_owner', obj.nspname);
    end loop;
    for obj in
        select
            c.oid::regclass as rel,
            case c.relkind
                when 'S' then 'sequence' when 'v' then 'view'
                when 'm' then 'materialized view' when 'f' then 'foreign table'
                else 'table'
            end as kind
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where
            n.nspname like 'ml\_%'
            and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
            -- a sequence owned by a column moves with its table
            and not (c.relkind = 'S' and exists (
                select 1 from pg_depend as d
                where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')
            ))
    loop
        execute format('alter %s %s owner to mlwh_owner', obj.kind, obj.rel);
    end loop;
    for obj in
        select p.oid::regprocedure as proc
        from pg_proc as p
        inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname like 'ml\_%'
    loop
        execute format('alter routine %s owner to mlwh_owner', obj.proc);
    end loop;
end
$$;

-- privileges
grant usage on schema ml_raw, ml_ops to mlwh_ingest, mlwh_service, mlwh_maintainer;
grant select, insert on all tables in schema ml_raw to mlwh_ingest;
grant insert on ml_ops.dead_letters, ml_ops.writer_stats to mlwh_ingest;
grant select, insert on
ml_raw.ml_predictions, ml_raw.ml_feedback, ml_raw.ml_performance_metrics,
ml_raw.learning_events, ml_raw.ml_prediction_outcomes
to mlwh_service;
grant select on ml_raw.prediction_ids to mlwh_service;
grant insert on ml_ops.dead_letters, ml_ops.writer_stats to mlwh_service;
grant select on all tables in schema ml_ops to mlwh_maintainer;
alter default privileges for role mlwh_owner in schema ml_raw
grant select, insert on tables to mlwh_ingest;
alter default privileges for role mlwh_owner in schema ml_ops
grant select on tables to mlwh_maintainer;

-- migrate:down
alter default privileges for role mlwh_owner in schema ml_ops
revoke select on tables from mlwh_maintainer;
alter default privileges for role mlwh_owner in schema ml_raw
revoke select, insert on tables from mlwh_ingest;

drop event trigger mlwh_audit_drop;
drop event trigger mlwh_audit_ddl;
drop function ml_ops.audit_ddl();
drop table ml_ops.audit_log;

drop policy service_reads_own on ml_raw.ml_prediction_outcomes;
drop policy service_inserts_own on ml_raw.ml_prediction_outcomes;
alter table ml_raw.ml_prediction_outcomes disable row level security;
drop policy service_reads_own on ml_raw.prediction_ids;
alter table ml_raw.prediction_ids disable row level security;
drop policy service_reads_own on ml_raw.learning_events;
drop policy service_inserts_own on ml_raw.learning_events;
alter table ml_raw.learning_events disable row level security;
drop policy service_reads_own on ml_raw.ml_performance_metrics;
drop policy service_inserts_own on ml_raw.ml_performance_metrics;
alter table ml_raw.ml_performance_metrics disable row level security;
drop policy service_reads_own on ml_raw.ml_feedback;
drop policy service_inserts_own on ml_raw.ml_feedback;
alter table ml_raw.ml_feedback disable row level security;
drop policy service_reads_own on ml_raw.ml_predictions;
drop policy service_inserts_own on ml_raw.ml_predictions;
alter table ml_raw.ml_predictions disable row level security;
drop function ml_ops.current_services();

create or replace function ml_raw.ml_predictions_register() returns trigger
language plpgsql as $$
declare
    bad record;
begin
    insert into ml_raw.prediction_ids (prediction_id, created_at)
    select prediction_id, created_at from inserted;

    if to_regclass('ml_ref.prediction_types') is not null then
        -- one group per service and type: the check costs a hash aggregate, not a join per row
        select
            g.service_name,
            g.prediction_type,
            case when g.low < t.value_min then g.low else g.high end as predicted_value,
            t.value_min,
            t.value_max,
            t.prediction_type is null as is_unregistered
        into bad
        from (
            select
                service_name,
                prediction_type,
                min(predicted_value) as low,
                max(predicted_value) as high
            from inserted
            group by service_name, prediction_type
        ) as g
        left join ml_ref.prediction_types as t
            on g.prediction_type = t.prediction_type and g.service_name = t.service_name
        where
            t.prediction_type is null
            or g.low < t.value_min
            or g.high > t.value_max
        limit 1;
        if found and bad.is_unregistered then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'unregistered prediction type: %s/%s is not in ml_ref.prediction_types',
                    bad.service_name, bad.prediction_type
                ),
                hint = 'add it to seeds/prediction_types.csv and run dbt seed';
        elsif found then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'predicted_value %s is outside [%s, %s] for %s/%s',
                    bad.predicted_value, bad.value_min, bad.value_max,
                    bad.service_name, bad.prediction_type
                );
        end if;
    end if;
    return null;
end
$$;

alter table ml_raw.prediction_ids drop column service_name;

-- privileges of the group roles in this database, then ownership back to the session's role
do $$
declare
    role_name text;
begin
    execute format('reassign owned by mlwh_owner to %I', session_user);
    foreach role_name in array array[
        'mlwh_ingest', 'mlwh_service', 'mlwh_analyst', 'mlwh_maintainer', 'mlwh_owner'
    ] loop
        execute format('drop owned by %I', role_name);  -- its privileges here (owns nothing now)
    end loop;
end
$$;
