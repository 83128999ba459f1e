with

renamed as (

    select
        dq_result_id,
        run_id,
        checked_at,
        check_name,
        node as node_unique_id,
        resource_type,
        severity,
        status as check_status,
        failing_rows,
        observed_value,
        threshold,
        message,
        execution_seconds,
        (checked_at at time zone 'UTC')::date as checked_date
    from {{ source('ml_ops', 'dq_results') }}

)

select * from renamed
