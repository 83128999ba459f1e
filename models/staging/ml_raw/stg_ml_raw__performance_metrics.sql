with

renamed as (

    select
        metric_id,
        recorded_at,
        service_name,
        model_version,
        metric_name,
        metric_value,
        window_start,
        window_end,
        dimensions,
        ingested_at,
        (recorded_at at time zone 'UTC')::date as recorded_date
    from {{ source('ml_raw', 'ml_performance_metrics') }}

)

select * from renamed
