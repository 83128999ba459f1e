-- squawk: the keys are rebuilt inside the engine's one transaction with lock_timeout set (ACCESS
-- EXCLUSIVE while each partition's key index builds); the replaced single-column indexes are
-- led by the new keys, so dropping them loses no plan. The down restores the former nullability.
-- squawk-ignore-file ban-drop-constraint, prefer-robust-stmts, require-lock-timeout, require-statement-timeout, require-concurrent-index-creation, require-concurrent-index-deletion, adding-serial-primary-key-field, constraint-missing-not-valid, ban-drop-not-null, ban-drop-default, adding-not-nullable-field
-- Every landing table of the prediction log holds prediction_id in its primary key
-- (docs/requirements.md#scale-out). On a distributed warehouse prediction_id is the distribution
-- column of predictions, outcomes and feedback: a unique key must contain it, and a row must
-- have one. prediction_id leads each key, so the key serves the lookups of a prediction's
-- outcomes and feedback that the single-column indexes served.
--
-- Feedback about no prediction (a comment on a service) keeps its home in ml_raw.ml_feedback
-- under the nil UUID, the table's default for prediction_id; stg_ml_raw__feedback turns it back
-- into a null prediction_id, so marts and analysts see what they saw before.

-- migrate:up
update ml_raw.ml_feedback
set prediction_id = '00000000-0000-0000-0000-000000000000'
where prediction_id is null;

alter table ml_raw.ml_feedback
alter column prediction_id set default '00000000-0000-0000-0000-000000000000',
alter column prediction_id set not null,
drop constraint ml_feedback_pkey,
add constraint ml_feedback_pkey primary key (prediction_id, feedback_id, created_at);

drop index ml_raw.ml_feedback_prediction_idx;

comment on column ml_raw.ml_feedback.prediction_id is
    'Prediction the feedback is about; the nil UUID (the default) for feedback about none.';

alter table ml_raw.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_pkey,
add constraint ml_prediction_outcomes_pkey primary key (prediction_id, outcome_id, observed_at);

drop index ml_raw.ml_prediction_outcomes_prediction_idx;

alter table ml_archive.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_pkey,
add constraint ml_prediction_outcomes_pkey primary key (prediction_id, outcome_id, observed_at);

drop index ml_archive.ml_prediction_outcomes_prediction_idx;

-- migrate:down
create index ml_prediction_outcomes_prediction_idx
on ml_archive.ml_prediction_outcomes (prediction_id);

alter table ml_archive.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_pkey,
add constraint ml_prediction_outcomes_pkey primary key (outcome_id, observed_at);

create index ml_prediction_outcomes_prediction_idx
on ml_raw.ml_prediction_outcomes (prediction_id);

alter table ml_raw.ml_prediction_outcomes
drop constraint ml_prediction_outcomes_pkey,
add constraint ml_prediction_outcomes_pkey primary key (outcome_id, observed_at);

create index ml_feedback_prediction_idx on ml_raw.ml_feedback (prediction_id);

alter table ml_raw.ml_feedback
drop constraint ml_feedback_pkey,
add constraint ml_feedback_pkey primary key (feedback_id, created_at),
alter column prediction_id drop not null,
alter column prediction_id drop default;

update ml_raw.ml_feedback
set prediction_id = null
where prediction_id = '00000000-0000-0000-0000-000000000000';

comment on column ml_raw.ml_feedback.prediction_id is 'Prediction the feedback is about, if any.';
