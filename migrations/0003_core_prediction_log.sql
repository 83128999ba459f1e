-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The unified prediction log (docs/requirements.md#prediction-log) and its companions: outcomes
-- (append-only, instead of updating actual_value in big partitions; #outcomes-append-only),
-- feedback, per-service model metrics and the learning events. Partitions other than
-- <table>_default are created by the ensure_partitions macro from the `meta` in models/staging/ml_raw/_ml_raw__sources.yml.

-- migrate:up
create table ml_raw.ml_predictions (
    prediction_id uuid not null,
    created_at timestamptz not null,
    service_name text not null,
    prediction_type text not null,
    model_id uuid null,
    model_version text null,
    target_entity_type text null,
    target_entity_id text null,
    predicted_value double precision null,
    prediction_payload jsonb null,
    confidence double precision null,
    confidence_interval jsonb null,
    context jsonb not null default '{}',
    source text not null default 'ml_model',
    ingested_at timestamptz not null default now(),
    constraint ml_predictions_pkey primary key (prediction_id, created_at),
    constraint ml_predictions_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id),
    constraint ml_predictions_service_name_check check (
        service_name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' and length(service_name) <= 64
    ),
    constraint ml_predictions_prediction_type_check check (
        prediction_type ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' and length(prediction_type) <= 64
    ),
    constraint ml_predictions_predicted_value_check check (
        predicted_value <> 'NaN' and predicted_value not in ('Infinity', '-Infinity')
    ),
    constraint ml_predictions_value_present_check check (
        predicted_value is not null or prediction_payload is not null
    ),
    constraint ml_predictions_confidence_check check (confidence between 0 and 1),
    constraint ml_predictions_confidence_interval_check check (
        jsonb_typeof(confidence_interval) = 'object'
    ),
    constraint ml_predictions_context_check check (jsonb_typeof(context) = 'object'),
    constraint ml_predictions_source_check check (length(source) between 1 and 64)
) partition by range (created_at);

create table ml_raw.ml_predictions_default partition of ml_raw.ml_predictions default;

-- volume per service and day, recent activity, errors per type
-- (docs/requirements.md#monitoring-queries)
create index ml_predictions_service_created_idx
    on ml_raw.ml_predictions (service_name, created_at);
create index ml_predictions_type_created_idx
    on ml_raw.ml_predictions (prediction_type, created_at);
create index ml_predictions_model_version_created_idx
    on ml_raw.ml_predictions (model_version, created_at);

comment on table ml_raw.ml_predictions is
    'Unified prediction log of every service (their own tables are views over it): one row '
    'per prediction, written once by the service. Daily partitions on created_at. Outcomes '
    'arrive later in ml_prediction_outcomes, per-service tables are dbt models over this log.';
comment on column ml_raw.ml_predictions.prediction_id is
    'Client-generated id (time-ordered UUIDv7 unless given), with created_at the primary key.';
comment on column ml_raw.ml_predictions.created_at is
    'When the prediction was made (UTC), partition key.';
comment on column ml_raw.ml_predictions.service_name is
    'Service that made the prediction (code-roach, oracle, ...): lowercase, dash-separated.';
comment on column ml_raw.ml_predictions.prediction_type is
    'What is predicted (code-quality, bug-likelihood, ...): lowercase, dash-separated.';
comment on column ml_raw.ml_predictions.model_id is 'Optional reference to ml_raw.ml_models.';
comment on column ml_raw.ml_predictions.model_version is 'Model version label, e.g. v3-advanced.';
comment on column ml_raw.ml_predictions.target_entity_type is
    'Kind of thing the prediction is about (code_file, task, session, ...).';
comment on column ml_raw.ml_predictions.target_entity_id is 'Id of that thing.';
comment on column ml_raw.ml_predictions.predicted_value is
    'Scalar prediction (finite), binary types hold P(class = 1).';
comment on column ml_raw.ml_predictions.prediction_payload is
    'Structured prediction (JSON), when not a single number.';
comment on column ml_raw.ml_predictions.confidence is 'Model confidence in [0, 1].';
comment on column ml_raw.ml_predictions.confidence_interval is
    'Interval as a JSON object, e.g. {"lower": 0.8, "upper": 0.9}.';
comment on column ml_raw.ml_predictions.context is
    'Service-specific context as a JSON object (file_path, task_id, ...).';
comment on column ml_raw.ml_predictions.source is 'Producer kind: ml_model, heuristic, ...';
comment on column ml_raw.ml_predictions.ingested_at is 'When the row reached the warehouse.';

create table ml_raw.ml_prediction_outcomes (
    outcome_id uuid not null,
    observed_at timestamptz not null,
    prediction_id uuid not null,
    actual_value double precision not null,
    prediction_created_at timestamptz null,
    source text not null default 'ground_truth',
    ingested_at timestamptz not null default now(),
    constraint ml_prediction_outcomes_pkey primary key (outcome_id, observed_at),
    constraint ml_prediction_outcomes_actual_value_check check (
        actual_value <> 'NaN' and actual_value not in ('Infinity', '-Infinity')
    ),
    constraint ml_prediction_outcomes_source_check check (length(source) between 1 and 64)
) partition by range (observed_at);

create table ml_raw.ml_prediction_outcomes_default
    partition of ml_raw.ml_prediction_outcomes default;

create index ml_prediction_outcomes_prediction_idx
    on ml_raw.ml_prediction_outcomes (prediction_id);

comment on table ml_raw.ml_prediction_outcomes is
    'Observed actual values of predictions, append-only: a later '
    'outcome for the same prediction supersedes earlier ones. Daily partitions on observed_at.';
comment on column ml_raw.ml_prediction_outcomes.outcome_id is
    'Client-generated id, with observed_at the primary key.';
comment on column ml_raw.ml_prediction_outcomes.observed_at is
    'When the actual value was observed (UTC), partition key.';
comment on column ml_raw.ml_prediction_outcomes.prediction_id is
    'The prediction this outcome belongs to (no FK: the log is partitioned and may be pruned).';
comment on column ml_raw.ml_prediction_outcomes.actual_value is
    'Observed value (finite), 0 or 1 for binary prediction types.';
comment on column ml_raw.ml_prediction_outcomes.prediction_created_at is
    'created_at of the prediction when known, so joins can prune its partitions.';
comment on column ml_raw.ml_prediction_outcomes.source is 'Where the truth came from.';
comment on column ml_raw.ml_prediction_outcomes.ingested_at is
    'When the row reached the warehouse.';

create table ml_raw.ml_feedback (
    feedback_id uuid not null,
    created_at timestamptz not null,
    prediction_id uuid null,
    service_name text not null,
    feedback_type text not null,
    rating double precision null,
    corrected_value double precision null,
    comment text null,
    user_id text null,
    context jsonb not null default '{}',
    ingested_at timestamptz not null default now(),
    constraint ml_feedback_pkey primary key (feedback_id, created_at),
    constraint ml_feedback_service_name_check check (
        service_name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' and length(service_name) <= 64
    ),
    constraint ml_feedback_feedback_type_check check (
        feedback_type in ('thumbs_up', 'thumbs_down', 'rating', 'correction', 'comment')
    ),
    constraint ml_feedback_rating_check check (
        rating <> 'NaN' and rating not in ('Infinity', '-Infinity') and rating between 0 and 5
    ),
    constraint ml_feedback_corrected_value_check check (
        corrected_value <> 'NaN' and corrected_value not in ('Infinity', '-Infinity')
    ),
    constraint ml_feedback_context_check check (jsonb_typeof(context) = 'object')
) partition by range (created_at);

create table ml_raw.ml_feedback_default partition of ml_raw.ml_feedback default;

create index ml_feedback_prediction_idx on ml_raw.ml_feedback (prediction_id);
create index ml_feedback_service_created_idx on ml_raw.ml_feedback (service_name, created_at);

comment on table ml_raw.ml_feedback is
    'User feedback on predictions. Monthly partitions on created_at.';
comment on column ml_raw.ml_feedback.feedback_id is 'Client-generated id, with created_at the PK.';
comment on column ml_raw.ml_feedback.created_at is 'When the feedback was given (UTC).';
comment on column ml_raw.ml_feedback.prediction_id is 'Prediction the feedback is about, if any.';
comment on column ml_raw.ml_feedback.service_name is 'Service the feedback concerns.';
comment on column ml_raw.ml_feedback.feedback_type is
    'thumbs_up, thumbs_down, rating, correction or comment.';
comment on column ml_raw.ml_feedback.rating is 'Rating in [0, 5] for feedback_type rating.';
comment on column ml_raw.ml_feedback.corrected_value is 'The value the user says was right.';
comment on column ml_raw.ml_feedback.comment is 'Free text.';
comment on column ml_raw.ml_feedback.user_id is 'Who gave the feedback (service-defined id).';
comment on column ml_raw.ml_feedback.context is 'Extra context as a JSON object.';
comment on column ml_raw.ml_feedback.ingested_at is 'When the row reached the warehouse.';

create table ml_raw.ml_performance_metrics (
    metric_id uuid not null,
    recorded_at timestamptz not null,
    service_name text not null,
    model_version text null,
    metric_name text not null,
    metric_value double precision not null,
    window_start timestamptz null,
    window_end timestamptz null,
    dimensions jsonb not null default '{}',
    ingested_at timestamptz not null default now(),
    constraint ml_performance_metrics_pkey primary key (metric_id, recorded_at),
    constraint ml_performance_metrics_service_name_check check (
        service_name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' and length(service_name) <= 64
    ),
    constraint ml_performance_metrics_metric_name_check check (
        length(metric_name) between 1 and 128
    ),
    constraint ml_performance_metrics_metric_value_check check (
        metric_value <> 'NaN' and metric_value not in ('Infinity', '-Infinity')
    ),
    constraint ml_performance_metrics_window_check check (window_end >= window_start),
    constraint ml_performance_metrics_dimensions_check check (
        jsonb_typeof(dimensions) = 'object'
    )
) partition by range (recorded_at);

create table ml_raw.ml_performance_metrics_default
    partition of ml_raw.ml_performance_metrics default;

create index ml_performance_metrics_service_metric_idx
    on ml_raw.ml_performance_metrics (service_name, metric_name, recorded_at);

comment on table ml_raw.ml_performance_metrics is
    'Per-service model metrics over time (latency, accuracy, throughput ...). Monthly '
    'partitions on recorded_at, after 365 days kept only as daily aggregates in '
    'ml_archive.ml_performance_metrics_daily.';
comment on column ml_raw.ml_performance_metrics.metric_id is
    'Client-generated id, with recorded_at the primary key.';
comment on column ml_raw.ml_performance_metrics.recorded_at is 'When measured (UTC).';
comment on column ml_raw.ml_performance_metrics.service_name is 'Service the metric is about.';
comment on column ml_raw.ml_performance_metrics.model_version is 'Model version, if any.';
comment on column ml_raw.ml_performance_metrics.metric_name is 'e.g. latency_ms, accuracy.';
comment on column ml_raw.ml_performance_metrics.metric_value is 'Measured value (finite).';
comment on column ml_raw.ml_performance_metrics.window_start is
    'Start of the window the value summarises, if any.';
comment on column ml_raw.ml_performance_metrics.window_end is 'End of that window.';
comment on column ml_raw.ml_performance_metrics.dimensions is
    'Extra dimensions as a JSON object.';
comment on column ml_raw.ml_performance_metrics.ingested_at is
    'When the row reached the warehouse.';

create table ml_archive.ml_performance_metrics_daily (
    metric_date date not null,
    service_name text not null,
    model_version text null,
    metric_name text not null,
    row_count bigint not null,
    metric_value_sum double precision not null,
    metric_value_min double precision not null,
    metric_value_max double precision not null,
    aggregated_at timestamptz not null default now()
);

create index ml_performance_metrics_daily_date_idx
    on ml_archive.ml_performance_metrics_daily (metric_date, service_name, metric_name);

comment on table ml_archive.ml_performance_metrics_daily is
    'Daily aggregates of expired ml_raw.ml_performance_metrics partitions (retention action '
    'aggregate): one row per UTC day, service_name, model_version and metric_name.';

create table ml_raw.learning_events (
    event_id uuid not null,
    occurred_at timestamptz not null,
    event_type text not null,
    source text not null,
    service_name text null,
    entity_type text null,
    entity_id text null,
    session_id text null,
    payload jsonb not null default '{}',
    processed_at timestamptz null,
    ingested_at timestamptz not null default now(),
    constraint learning_events_pkey primary key (event_id, occurred_at),
    constraint learning_events_event_type_check check (length(event_type) between 1 and 128),
    constraint learning_events_source_check check (length(source) between 1 and 128),
    constraint learning_events_payload_check check (jsonb_typeof(payload) = 'object')
) partition by range (occurred_at);

create table ml_raw.learning_events_default partition of ml_raw.learning_events default;

create index learning_events_type_occurred_idx
    on ml_raw.learning_events (event_type, occurred_at);
-- docs/requirements.md#alert-learning-lag: oldest unprocessed event
create index learning_events_unprocessed_idx
    on ml_raw.learning_events (occurred_at) where processed_at is null;

comment on table ml_raw.learning_events is
    'Time-series learning events (about 1M a day). Daily partitions on '
    'occurred_at.';
comment on column ml_raw.learning_events.event_id is 'Client-generated id, with occurred_at the PK.';
comment on column ml_raw.learning_events.occurred_at is 'When the event happened (UTC).';
comment on column ml_raw.learning_events.event_type is 'What happened.';
comment on column ml_raw.learning_events.source is 'Producer of the event.';
comment on column ml_raw.learning_events.service_name is 'Service, if any.';
comment on column ml_raw.learning_events.entity_type is 'Kind of entity the event concerns.';
comment on column ml_raw.learning_events.entity_id is 'Id of that entity.';
comment on column ml_raw.learning_events.session_id is 'Session, if any.';
comment on column ml_raw.learning_events.payload is 'Event body as a JSON object.';
comment on column ml_raw.learning_events.processed_at is
    'When a learner consumed the event, null while pending (lag monitoring).';
comment on column ml_raw.learning_events.ingested_at is 'When the row reached the warehouse.';

-- migrate:down
drop table ml_raw.learning_events;
drop table ml_archive.ml_performance_metrics_daily;
drop table ml_raw.ml_performance_metrics;
drop table ml_raw.ml_feedback;
drop table ml_raw.ml_prediction_outcomes;
drop table ml_raw.ml_predictions;
