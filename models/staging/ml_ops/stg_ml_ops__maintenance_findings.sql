with

renamed as (

    select
        finding_id as maintenance_finding_id,
        run_id as maintenance_run_id,
        found_at,
        step_number,
        step_id,
        kind as finding_kind,
        severity,
        object_type,
        object_name,
        observed_value,
        threshold,
        is_estimate,
        detail,
        action,
        action_status,
        action_started_at,
        action_finished_at,
        action_error,
        facts,
        action_status = 'done' as is_fixed,
        extract(epoch from action_finished_at - action_started_at)::double precision
            as action_seconds
    from {{ source('ml_ops', 'maintenance_findings') }}

)

select * from renamed
