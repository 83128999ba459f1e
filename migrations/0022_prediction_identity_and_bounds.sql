-- squawk: each constraint dropped below is replaced by a stricter one in the same statement,
-- inside the engine's one transaction with lock_timeout set; validating them reads each partition
-- once. The registry, its function and trigger are new, and the down section removes only them.
-- squawk-ignore-file ban-drop-table, ban-drop-constraint, ban-drop-function, prefer-robust-stmts, require-lock-timeout, require-statement-timeout, constraint-missing-not-valid, adding-not-nullable-field, ban-drop-column
-- One prediction id, one row (docs/requirements.md#prediction-identity), and bounded values and
-- text (docs/requirements.md#input-bounds).
--
-- ml_predictions is partitioned by created_at, so its primary key has to include created_at: on
-- its own it lets a retried write (same id, a new created_at) store a second row. The registry
-- ml_raw.prediction_ids holds every id once. A statement-level trigger with a transition table
-- fills it for every INSERT or COPY into ml_predictions, whoever runs it; a repeated id fails the
-- statement with unique_violation, and the writer then stores only the ids the registry lacks.
-- The same trigger refuses prediction types that ml_ref.prediction_types does not register for
-- the service, and values outside that type's [value_min, value_max], once dbt has seeded
-- ml_ref (before that, only the table's own checks apply).
--
-- Values: every measured number is finite and within +-1e15, so no sum of squares in the marts
-- can overflow double precision. Text: each free-text column gets a length limit, folded into
-- one check per table (each extra check costs the writer's COPY about 2 us a row).

-- migrate:up
create table ml_raw.prediction_ids (
    prediction_id uuid not null,
    created_at timestamptz not null,
    constraint prediction_ids_pkey primary key (prediction_id)
);

comment on table ml_raw.prediction_ids is
    'Registry of prediction ids: one row per id ever stored in ml_raw.ml_predictions, filled by '
    'the trigger ml_predictions_register, so that an id is stored once whatever path writes it.';
comment on column ml_raw.prediction_ids.prediction_id is 'The prediction id (unique).';
comment on column ml_raw.prediction_ids.created_at is
    'created_at of the stored row, to find it in its partition.';

-- rows already stored: the first ingested copy of each id stays, later copies become dead letters
insert into ml_raw.prediction_ids (prediction_id, created_at)
select distinct on (prediction_id)
    prediction_id,
    created_at
from ml_raw.ml_predictions
order by prediction_id asc, ingested_at asc, created_at asc;

with repeated as (
    delete from ml_raw.ml_predictions as p
    using ml_raw.prediction_ids as r
    where p.prediction_id = r.prediction_id and p.created_at <> r.created_at
    returning p.*
)

insert into ml_ops.dead_letters (source, target_table, reason, payload)
select
    'migration 0022',
    'ml_raw.ml_predictions',
    'duplicate prediction_id: another row with this id was stored first',
    row_to_json(repeated)::text
from repeated;

create function ml_raw.ml_predictions_register() returns trigger
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

comment on function ml_raw.ml_predictions_register() is
    'After each INSERT/COPY into ml_raw.ml_predictions: registers the ids (a repeated id fails '
    'the statement) and checks service/type registration and value bounds against ml_ref.';

create trigger ml_predictions_register
after insert on ml_raw.ml_predictions
referencing new table as inserted
for each statement execute function ml_raw.ml_predictions_register();

alter table ml_raw.ml_predictions
drop constraint ml_predictions_predicted_value_check,
drop constraint ml_predictions_source_check,
add constraint ml_predictions_predicted_value_check check (
    predicted_value between -1e15 and 1e15
),
add constraint ml_predictions_text_length_check check (
    length(source) between 1 and 64
    and length(model_version) <= 128
    and length(target_entity_type) <= 64
    and length(target_entity_id) <= 256
);

alter table ml_raw.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_actual_value_check,
add constraint ml_prediction_outcomes_actual_value_check check (
    actual_value between -1e15 and 1e15
);

alter table ml_raw.ml_feedback
drop constraint ml_feedback_corrected_value_check,
add constraint ml_feedback_corrected_value_check check (
    corrected_value between -1e15 and 1e15
),
add constraint ml_feedback_text_length_check check (
    length(comment) <= 10000
    and length(user_id) <= 256
);

alter table ml_raw.ml_performance_metrics
drop constraint ml_performance_metrics_metric_value_check,
add constraint ml_performance_metrics_metric_value_check check (
    metric_value between -1e15 and 1e15
),
add constraint ml_performance_metrics_text_length_check check (
    length(model_version) <= 128
);

alter table ml_raw.learning_events
add constraint learning_events_text_length_check check (
    length(entity_type) <= 64
    and length(entity_id) <= 256
    and length(session_id) <= 256
);

-- migrate:down
alter table ml_raw.learning_events
drop constraint learning_events_text_length_check;

alter table ml_raw.ml_performance_metrics
drop constraint ml_performance_metrics_text_length_check,
drop constraint ml_performance_metrics_metric_value_check,
add constraint ml_performance_metrics_metric_value_check check (
    metric_value <> 'NaN' and metric_value not in ('Infinity', '-Infinity')
);

alter table ml_raw.ml_feedback
drop constraint ml_feedback_text_length_check,
drop constraint ml_feedback_corrected_value_check,
add constraint ml_feedback_corrected_value_check check (
    corrected_value <> 'NaN' and corrected_value not in ('Infinity', '-Infinity')
);

alter table ml_raw.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_actual_value_check,
add constraint ml_prediction_outcomes_actual_value_check check (
    actual_value <> 'NaN' and actual_value not in ('Infinity', '-Infinity')
);

alter table ml_raw.ml_predictions
drop constraint ml_predictions_text_length_check,
drop constraint ml_predictions_predicted_value_check,
add constraint ml_predictions_predicted_value_check check (
    predicted_value <> 'NaN' and predicted_value not in ('Infinity', '-Infinity')
),
add constraint ml_predictions_source_check check (length(source) between 1 and 64);

drop trigger ml_predictions_register on ml_raw.ml_predictions;
drop function ml_raw.ml_predictions_register();
drop table ml_raw.prediction_ids;
