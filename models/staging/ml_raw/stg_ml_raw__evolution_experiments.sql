with

renamed as (

    select
        experiment_id,
        experiment_name,
        problem_definition,
        objective_function,
        configuration,
        status,
        population_size,
        max_generations,
        best_fitness,
        best_individual_id,
        created_at,
        started_at,
        finished_at
    from {{ source('ml_raw', 'evolution_experiments') }}

)

select * from renamed
