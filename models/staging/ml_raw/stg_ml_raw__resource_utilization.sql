with

renamed as (

    select
        resource_utilization_id,
        recorded_at,
        host,
        resource_type,
        utilization_pct,
        used_value,
        capacity_value,
        unit
    from {{ source('ml_raw', 'resource_utilization') }}

)

select * from renamed
