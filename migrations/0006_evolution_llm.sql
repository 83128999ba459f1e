-- squawk: every object below is created by this file (no existing table is locked or scanned) and
-- the engine runs the file in one transaction, int columns are bounded counts, down sections drop
-- only what up created.
-- squawk-ignore-file adding-foreign-key-constraint, ban-drop-constraint, ban-drop-table, constraint-missing-not-valid, prefer-bigint-over-int, prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout
-- The learning schema's evolution tables (docs/requirements.md#source-learning-schema):
-- experiments, generations, individuals, code evaluations and LLM interactions (partitioned, tokens and cost).

-- migrate:up
create table ml_raw.evolution_experiments (
    experiment_id uuid not null default gen_random_uuid(),
    experiment_name text not null,
    problem_definition jsonb not null,
    objective_function jsonb not null,
    configuration jsonb not null default '{}',
    status text not null default 'created',
    population_size integer null,
    max_generations integer null,
    best_fitness double precision null,
    best_individual_id uuid null,
    created_at timestamptz not null default now(),
    started_at timestamptz null,
    finished_at timestamptz null,
    constraint evolution_experiments_pkey primary key (experiment_id),
    constraint evolution_experiments_status_check check (
        status in ('created', 'running', 'completed', 'failed', 'cancelled')
    ),
    constraint evolution_experiments_sizes_check check (
        population_size > 0 and max_generations > 0
    ),
    constraint evolution_experiments_best_fitness_check check (
        best_fitness <> 'NaN' and best_fitness not in ('Infinity', '-Infinity')
    ),
    constraint evolution_experiments_finished_check check (finished_at >= started_at),
    constraint evolution_experiments_json_check check (
        jsonb_typeof(problem_definition) = 'object'
        and jsonb_typeof(objective_function) = 'object'
        and jsonb_typeof(configuration) = 'object'
    )
);

create index evolution_experiments_status_idx
    on ml_raw.evolution_experiments (status, created_at);

create table ml_raw.evolution_generations (
    generation_id uuid not null default gen_random_uuid(),
    experiment_id uuid not null,
    generation_number integer not null,
    population_size integer null,
    best_fitness double precision null,
    average_fitness double precision null,
    worst_fitness double precision null,
    diversity_score double precision null,
    started_at timestamptz not null default now(),
    finished_at timestamptz null,
    constraint evolution_generations_pkey primary key (generation_id),
    constraint evolution_generations_experiment_id_fkey foreign key (experiment_id)
        references ml_raw.evolution_experiments (experiment_id) on delete cascade,
    constraint evolution_generations_number_key unique (experiment_id, generation_number),
    constraint evolution_generations_number_check check (generation_number >= 0),
    constraint evolution_generations_fitness_check check (
        best_fitness <> 'NaN' and best_fitness not in ('Infinity', '-Infinity')
        and average_fitness <> 'NaN' and average_fitness not in ('Infinity', '-Infinity')
        and worst_fitness <> 'NaN' and worst_fitness not in ('Infinity', '-Infinity')
    ),
    constraint evolution_generations_finished_check check (finished_at >= started_at)
);

create table ml_raw.evolution_individuals (
    individual_id uuid not null default gen_random_uuid(),
    generation_id uuid not null,
    parent_ids uuid [] not null default '{}',
    genotype jsonb not null,
    phenotype text null,
    fitness_score double precision null,
    metrics jsonb not null default '{}',
    is_elite boolean not null default false,
    created_at timestamptz not null default now(),
    constraint evolution_individuals_pkey primary key (individual_id),
    constraint evolution_individuals_generation_id_fkey foreign key (generation_id)
        references ml_raw.evolution_generations (generation_id) on delete cascade,
    constraint evolution_individuals_fitness_check check (
        fitness_score <> 'NaN' and fitness_score not in ('Infinity', '-Infinity')
    ),
    constraint evolution_individuals_json_check check (
        jsonb_typeof(genotype) = 'object' and jsonb_typeof(metrics) = 'object'
    )
);

create index evolution_individuals_fitness_idx
    on ml_raw.evolution_individuals (generation_id, fitness_score desc);

alter table ml_raw.evolution_experiments
    add constraint evolution_experiments_best_individual_id_fkey
    foreign key (best_individual_id) references ml_raw.evolution_individuals (individual_id)
    on delete set null;

create table ml_raw.code_evaluations (
    code_evaluation_id uuid not null default gen_random_uuid(),
    individual_id uuid null,
    code_hash text not null,
    language text null,
    evaluation_type text not null,
    passed boolean null,
    execution_time_ms double precision null,
    memory_usage_bytes bigint null,
    quality_score double precision null,
    metrics jsonb not null default '{}',
    error_message text null,
    evaluated_at timestamptz not null default now(),
    constraint code_evaluations_pkey primary key (code_evaluation_id),
    constraint code_evaluations_individual_id_fkey foreign key (individual_id)
        references ml_raw.evolution_individuals (individual_id) on delete cascade,
    constraint code_evaluations_time_check check (
        execution_time_ms >= 0 and execution_time_ms < 'Infinity'
    ),
    constraint code_evaluations_memory_check check (memory_usage_bytes >= 0),
    constraint code_evaluations_quality_check check (quality_score between 0 and 1),
    constraint code_evaluations_metrics_check check (jsonb_typeof(metrics) = 'object')
);

create index code_evaluations_individual_idx on ml_raw.code_evaluations (individual_id);
create index code_evaluations_hash_idx on ml_raw.code_evaluations (code_hash);

create table ml_raw.llm_interactions (
    llm_interaction_id uuid not null default gen_random_uuid(),
    created_at timestamptz not null default now(),
    experiment_id uuid null,
    individual_id uuid null,
    provider text not null,
    model_name text not null,
    purpose text null,
    prompt_tokens integer not null default 0,
    completion_tokens integer not null default 0,
    total_tokens integer not null default 0,
    cost_usd numeric(14, 6) not null default 0,
    latency_ms double precision null,
    status text not null default 'success',
    request jsonb null,
    response jsonb null,
    error_message text null,
    constraint llm_interactions_pkey primary key (llm_interaction_id, created_at),
    constraint llm_interactions_experiment_id_fkey foreign key (experiment_id)
        references ml_raw.evolution_experiments (experiment_id) on delete set null,
    constraint llm_interactions_tokens_check check (
        prompt_tokens >= 0 and completion_tokens >= 0
        and total_tokens = prompt_tokens + completion_tokens
    ),
    constraint llm_interactions_cost_check check (cost_usd >= 0),
    constraint llm_interactions_latency_check check (
        latency_ms >= 0 and latency_ms < 'Infinity'
    ),
    constraint llm_interactions_status_check check (
        status in ('success', 'error', 'timeout', 'rate_limited')
    )
) partition by range (created_at);

create table ml_raw.llm_interactions_default partition of ml_raw.llm_interactions default;

-- LLM usage tracking and cost analysis (docs/requirements.md#source-learning-schema): cost per
-- provider/model over time
create index llm_interactions_model_created_idx
    on ml_raw.llm_interactions (provider, model_name, created_at);
create index llm_interactions_experiment_idx on ml_raw.llm_interactions (experiment_id);

-- migrate:down
drop table ml_raw.llm_interactions;
drop table ml_raw.code_evaluations;
alter table ml_raw.evolution_experiments
    drop constraint evolution_experiments_best_individual_id_fkey;
drop table ml_raw.evolution_individuals;
drop table ml_raw.evolution_generations;
drop table ml_raw.evolution_experiments;
