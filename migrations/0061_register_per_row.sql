-- squawk: a new function only; no table is touched.
-- squawk-ignore-file prefer-robust-stmts, require-lock-timeout, require-statement-timeout, ban-drop-function
-- The per-row form of ml_raw.ml_predictions_register (docs/requirements.md#scale-out): the same
-- registration of each id with its service and the same checks of its service, type and value
-- bounds against ml_ref.prediction_types, one row at a time. On a single node the statement
-- trigger stays (one set-based insert per statement). On a distributed warehouse a statement
-- trigger cannot read its transition table where the shards are, so `mlwh distribute` puts this
-- function in its place as a row trigger, which runs on the worker holding the row: the id's
-- registry row is colocated with it, and ml_ref.prediction_types is a reference table there.

-- migrate:up
create function ml_raw.ml_predictions_register_row() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    registered record;
begin
    insert into ml_raw.prediction_ids (prediction_id, created_at, service_name)
    values (new.prediction_id, new.created_at, new.service_name);

    if to_regclass('ml_ref.prediction_types') is not null then
        select t.value_min, t.value_max into registered
        from ml_ref.prediction_types as t
        where t.prediction_type = new.prediction_type and t.service_name = new.service_name;
        if not found then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'unregistered prediction type: %s/%s is not in ml_ref.prediction_types',
                    new.service_name, new.prediction_type
                ),
                hint = 'add it to seeds/prediction_types.csv and run dbt seed';
        elsif new.predicted_value < registered.value_min
            or new.predicted_value > registered.value_max then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'predicted_value %s is outside [%s, %s] for %s/%s',
                    new.predicted_value, registered.value_min, registered.value_max,
                    new.service_name, new.prediction_type
                );
        end if;
    end if;
    return null;
end
$$;

comment on function ml_raw.ml_predictions_register_row() is
    'ml_predictions_register for one row: the row trigger that replaces the statement trigger on '
    'a distributed warehouse (mlwh distribute). Security definer, as the statement form.';

-- migrate:down
drop function ml_raw.ml_predictions_register_row();
