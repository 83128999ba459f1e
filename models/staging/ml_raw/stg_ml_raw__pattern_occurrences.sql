with

source as (

    select * from {{ source('ml_raw', 'pattern_occurrences') }}

),

renamed as (

    select
        pattern_occurrence_id,
        pattern_id,
        source_type,
        source_id,
        location_data,
        confidence,
        detected_at
    from source

)

select * from renamed
