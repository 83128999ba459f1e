with

renamed as (

    select
        feedback_id,
        created_at,
        prediction_id,
        service_name,
        feedback_type,
        rating,
        corrected_value,
        comment,
        user_id,
        context,
        ingested_at,
        (created_at at time zone 'UTC')::date as created_date
    from {{ source('ml_raw', 'ml_feedback') }}

)

select * from renamed
