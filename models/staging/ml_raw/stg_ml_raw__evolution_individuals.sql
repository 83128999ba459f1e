with

renamed as (

    select
        individual_id,
        generation_id,
        parent_ids,
        genotype,
        phenotype,
        fitness_score,
        metrics,
        is_elite,
        created_at
    from {{ source('ml_raw', 'evolution_individuals') }}

)

select * from renamed
