with

renamed as (

    select
        run_id as maintenance_run_id,
        started_at,
        finished_at,
        status as run_status,
        is_apply,
        is_forced,
        steps,
        fail_on,
        findings_count,
        open_findings_count,
        highest_severity,
        results,
        error as run_error,
        host,
        pid,
        (started_at at time zone 'UTC')::date as started_date,
        extract(epoch from finished_at - started_at)::double precision as duration_seconds
    from {{ source('ml_ops', 'maintenance_runs') }}

)

select * from renamed
