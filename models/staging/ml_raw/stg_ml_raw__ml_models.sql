with

renamed as (

    select
        model_id,
        model_name,
        version,
        version_number,
        sha256,
        size_bytes,
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
        deployed_at,
        deleted_at,
        purged_at
    from {{ source('ml_raw', 'ml_models') }}

)

select * from renamed
