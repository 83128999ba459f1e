with

source as (

    select * from {{ source('ml_raw', 'ml_predictions') }}

),

renamed as (

    select
        prediction_id,
        created_at,
        service_name,
        prediction_type,
        model_id,
        model_version,
        target_entity_type,
        target_entity_id,
        predicted_value,
        prediction_payload,
        confidence,
        confidence_interval,
        context,
        source as prediction_source,
        ingested_at,
        (created_at at time zone 'UTC')::date as created_date
    from source

)

select * from renamed
