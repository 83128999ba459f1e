{#
    One row per finding of `mlwh maintain` with its run's mode and outcome, and whether it was
    still there after the run (docs/requirements.md#maintenance-history). A view: runs append
    to the history, so it is read live.
#}
{{ config(materialized='view') }}

with

findings as (

    select * from {{ ref('stg_ml_ops__maintenance_findings') }}

),

runs as (

    select * from {{ ref('stg_ml_ops__maintenance_runs') }}

),

final as (

    select
        findings.maintenance_finding_id,
        findings.maintenance_run_id,
        findings.found_at,
        findings.step_number,
        findings.step_id,
        findings.finding_kind,
        findings.severity,
        findings.object_type,
        findings.object_name,
        findings.observed_value,
        findings.threshold,
        findings.is_estimate,
        findings.detail,
        findings.action,
        findings.action_status,
        findings.action_error,
        findings.action_seconds,
        findings.is_fixed,
        runs.is_apply,
        runs.run_status,
        runs.started_at as run_started_at,
        (findings.found_at at time zone 'UTC')::date as found_date,
        not findings.is_fixed as is_open
    from findings
    inner join runs on findings.maintenance_run_id = runs.maintenance_run_id

)

select * from final
