with

renamed as (

    select
        pattern_occurrence_id,
        pattern_id,
        source_type,
        source_id,
        location_data,
        confidence,
        detected_at
    from {{ source('ml_raw', 'pattern_occurrences') }}

)

select * from renamed
