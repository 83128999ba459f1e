with

renamed as (

    select
        query_log_id,
        executed_at,
        query_hash,
        query_text,
        database_name,
        user_name,
        duration_ms,
        rows_returned
    from {{ source('ml_raw', 'query_performance_logs') }}

)

select * from renamed
