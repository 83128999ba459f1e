with

renamed as (

    select
        model_id,
        model_name,
        version,
        model_type,
        framework,
        hyperparameters,
        metadata,
        description,
        status,
        is_active,
        created_by,
        created_at,
        updated_at,
        deployed_at
    from {{ source('ml_raw', 'ml_models') }}

)

select * from renamed
