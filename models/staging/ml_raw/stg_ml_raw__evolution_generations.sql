with

renamed as (

    select
        generation_id,
        experiment_id,
        generation_number,
        population_size,
        best_fitness,
        average_fitness,
        worst_fitness,
        diversity_score,
        started_at,
        finished_at
    from {{ source('ml_raw', 'evolution_generations') }}

)

select * from renamed
