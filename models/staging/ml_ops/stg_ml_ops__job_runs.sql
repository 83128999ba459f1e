with

renamed as (

    select
        run_id as job_run_id,
        job_name,
        server_id,
        started_at,
        finished_at,
        status as run_status,
        interval_seconds,
        summary as run_summary,
        error as run_error,
        extract(epoch from finished_at - started_at)::double precision as duration_seconds
    from {{ source('ml_ops', 'job_runs') }}

)

select * from renamed
