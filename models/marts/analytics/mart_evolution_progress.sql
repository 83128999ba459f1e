{#
    OpenEvolve progress (docs/requirements.md#source-learning-schema): per experiment and
    generation, best, mean and worst fitness of the generation's individuals, and the best so
    far.
#}
{{ config(contract={'enforced': true}) }}

with

experiments as (

    select * from {{ ref('stg_ml_raw__evolution_experiments') }}

),

generations as (

    select * from {{ ref('stg_ml_raw__evolution_generations') }}

),

individuals as (

    select * from {{ ref('stg_ml_raw__evolution_individuals') }}

),

per_generation as (

    select
        generations.generation_id,
        generations.experiment_id,
        generations.generation_number,
        count(individuals.individual_id)::bigint as individual_count,
        count(individuals.individual_id) filter (where individuals.is_elite)::bigint
            as elite_count,
        max(individuals.fitness_score) as best_fitness,
        avg(individuals.fitness_score) as mean_fitness,
        min(individuals.fitness_score) as worst_fitness
    from generations
    left join individuals on generations.generation_id = individuals.generation_id
    group by generations.generation_id, generations.experiment_id, generations.generation_number

),

final as (

    select
        per_generation.generation_id,
        per_generation.experiment_id,
        experiments.experiment_name,
        per_generation.generation_number,
        per_generation.individual_count,
        per_generation.elite_count,
        per_generation.best_fitness,
        per_generation.mean_fitness,
        per_generation.worst_fitness,
        max(per_generation.best_fitness) over (
            partition by per_generation.experiment_id
            order by per_generation.generation_number
        ) as best_fitness_so_far
    from per_generation
    left join experiments on per_generation.experiment_id = experiments.experiment_id

)

select * from final
