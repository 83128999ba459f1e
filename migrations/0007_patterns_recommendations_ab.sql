-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file ban-drop-table, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The learning schema's pattern tables (docs/requirements.md#source-learning-schema): patterns,
-- their occurrences, recommendations and A/B testing. Its `predictions` is not here: it is served
-- by ml_raw.ml_predictions (0003), see docs/schema.md.

-- migrate:up
create table ml_raw.identified_patterns (
    pattern_id uuid not null default gen_random_uuid(),
    pattern_type text not null,
    pattern_name text not null,
    description text null,
    confidence_score double precision not null,
    pattern_definition jsonb not null default '{}',
    occurrence_count integer not null default 0,
    is_active boolean not null default true,
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    constraint identified_patterns_pkey primary key (pattern_id),
    constraint identified_patterns_type_name_key unique (pattern_type, pattern_name),
    constraint identified_patterns_confidence_check check (confidence_score between 0 and 1),
    constraint identified_patterns_count_check check (occurrence_count >= 0),
    constraint identified_patterns_seen_check check (last_seen_at >= first_seen_at),
    constraint identified_patterns_definition_check check (
        jsonb_typeof(pattern_definition) = 'object'
    )
);

create table ml_raw.pattern_occurrences (
    pattern_occurrence_id uuid not null default gen_random_uuid(),
    pattern_id uuid not null,
    source_type text not null,
    source_id text not null,
    location_data jsonb not null default '{}',
    confidence double precision null,
    detected_at timestamptz not null default now(),
    constraint pattern_occurrences_pkey primary key (pattern_occurrence_id),
    constraint pattern_occurrences_pattern_id_fkey foreign key (pattern_id)
        references ml_raw.identified_patterns (pattern_id) on delete cascade,
    constraint pattern_occurrences_confidence_check check (confidence between 0 and 1),
    constraint pattern_occurrences_location_check check (jsonb_typeof(location_data) = 'object')
);

-- pattern trend analysis (docs/requirements.md#source-learning-schema): occurrences of a pattern
-- over time
create index pattern_occurrences_pattern_idx
    on ml_raw.pattern_occurrences (pattern_id, detected_at);
create index pattern_occurrences_source_idx
    on ml_raw.pattern_occurrences (source_type, source_id);

create table ml_raw.recommendations (
    recommendation_id uuid not null default gen_random_uuid(),
    recommendation_type text not null,
    title text not null,
    description text null,
    target_entity_type text null,
    target_entity_id text null,
    pattern_id uuid null,
    model_id uuid null,
    prediction_id uuid null,
    priority text not null default 'medium',
    confidence double precision null,
    expected_impact jsonb not null default '{}',
    status text not null default 'open',
    created_at timestamptz not null default now(),
    resolved_at timestamptz null,
    constraint recommendations_pkey primary key (recommendation_id),
    constraint recommendations_pattern_id_fkey foreign key (pattern_id)
        references ml_raw.identified_patterns (pattern_id) on delete set null,
    constraint recommendations_model_id_fkey foreign key (model_id)
        references ml_raw.ml_models (model_id) on delete set null,
    constraint recommendations_priority_check check (
        priority in ('low', 'medium', 'high', 'critical')
    ),
    constraint recommendations_status_check check (
        status in ('open', 'accepted', 'rejected', 'implemented', 'dismissed')
    ),
    constraint recommendations_confidence_check check (confidence between 0 and 1),
    constraint recommendations_resolved_check check (resolved_at >= created_at),
    constraint recommendations_impact_check check (jsonb_typeof(expected_impact) = 'object')
);

create index recommendations_status_idx on ml_raw.recommendations (status, priority, created_at);
create index recommendations_pattern_idx on ml_raw.recommendations (pattern_id);
create index recommendations_model_idx on ml_raw.recommendations (model_id);

create table ml_raw.ab_testing_experiments (
    ab_experiment_id uuid not null default gen_random_uuid(),
    experiment_name text not null,
    hypothesis text null,
    primary_metric text not null,
    arms jsonb not null default '[{"arm": "control", "weight": 0.5}, {"arm": "treatment", "weight": 0.5}]',
    control_arm text not null default 'control',
    control_model_id uuid null,
    treatment_model_id uuid null,
    minimum_sample_size integer null,
    significance_level double precision not null default 0.05,
    status text not null default 'draft',
    created_at timestamptz not null default now(),
    started_at timestamptz null,
    ended_at timestamptz null,
    constraint ab_testing_experiments_pkey primary key (ab_experiment_id),
    constraint ab_testing_experiments_name_key unique (experiment_name),
    constraint ab_testing_experiments_control_model_fkey foreign key (control_model_id)
        references ml_raw.ml_models (model_id),
    constraint ab_testing_experiments_treatment_model_fkey foreign key (treatment_model_id)
        references ml_raw.ml_models (model_id),
    constraint ab_testing_experiments_arms_check check (
        jsonb_typeof(arms) = 'array' and jsonb_array_length(arms) >= 2
    ),
    constraint ab_testing_experiments_sample_check check (minimum_sample_size > 0),
    constraint ab_testing_experiments_alpha_check check (
        significance_level > 0 and significance_level < 1
    ),
    constraint ab_testing_experiments_status_check check (
        status in ('draft', 'running', 'paused', 'completed', 'cancelled')
    ),
    constraint ab_testing_experiments_ended_check check (ended_at >= started_at)
);

create index ab_testing_experiments_control_model_idx
    on ml_raw.ab_testing_experiments (control_model_id);
create index ab_testing_experiments_treatment_model_idx
    on ml_raw.ab_testing_experiments (treatment_model_id);

create table ml_raw.ab_test_assignments (
    ab_test_assignment_id uuid not null default gen_random_uuid(),
    ab_experiment_id uuid not null,
    arm text not null,
    unit_id text not null,
    assigned_at timestamptz not null default now(),
    outcome_value double precision null,
    outcome_observed_at timestamptz null,
    context jsonb not null default '{}',
    constraint ab_test_assignments_pkey primary key (ab_test_assignment_id),
    constraint ab_test_assignments_experiment_id_fkey foreign key (ab_experiment_id)
        references ml_raw.ab_testing_experiments (ab_experiment_id) on delete cascade,
    constraint ab_test_assignments_unit_key unique (ab_experiment_id, unit_id),
    constraint ab_test_assignments_outcome_check check (
        outcome_value <> 'NaN' and outcome_value not in ('Infinity', '-Infinity')
    ),
    constraint ab_test_assignments_observed_check check (outcome_observed_at >= assigned_at),
    constraint ab_test_assignments_context_check check (jsonb_typeof(context) = 'object')
);

-- A/B results: outcome per arm
create index ab_test_assignments_arm_idx on ml_raw.ab_test_assignments (ab_experiment_id, arm);

comment on table ml_raw.ab_test_assignments is
    'One row per unit (user, session, request) assigned to an arm of an A/B experiment, with '
    'its outcome value once observed: what A/B analysis compares between arms.';

-- migrate:down
drop table ml_raw.ab_test_assignments;
drop table ml_raw.ab_testing_experiments;
drop table ml_raw.recommendations;
drop table ml_raw.pattern_occurrences;
drop table ml_raw.identified_patterns;
