with

renamed as (

    select
        pattern_id,
        pattern_type,
        pattern_name,
        description,
        confidence_score,
        pattern_definition,
        occurrence_count,
        is_active,
        first_seen_at,
        last_seen_at
    from {{ source('ml_raw', 'identified_patterns') }}

)

select * from renamed
