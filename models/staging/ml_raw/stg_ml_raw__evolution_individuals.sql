with

source as (

    select * from {{ source('ml_raw', 'evolution_individuals') }}

),

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
    from source

)

select * from renamed
