with

renamed as (

    select
        event_id,
        occurred_at,
        event_type,
        source as event_source,
        service_name,
        entity_type,
        entity_id,
        session_id,
        payload,
        processed_at,
        ingested_at,
        date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as occurred_hour,
        extract(epoch from processed_at - occurred_at)::double precision
            as processing_lag_seconds
    from {{ source('ml_raw', 'learning_events') }}

)

select * from renamed
