with

renamed as (

    select
        data_quality_check_id,
        run_id,
        started_at,
        finished_at,
        status as run_status,
        checks_total,
        checks_passed,
        checks_warned,
        checks_failed,
        checks_errored,
        quality_score
    from {{ source('ml_ops', 'data_quality_checks') }}

)

select * from renamed
