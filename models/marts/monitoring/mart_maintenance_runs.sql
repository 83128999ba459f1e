{#
    One row per `mlwh maintain` run: its mode, outcome and duration, its findings by severity
    and what its actions did (docs/requirements.md#maintenance-history). A view over the
    appended history.
#}
{{ config(materialized='view') }}

with

runs as (

    select * from {{ ref('stg_ml_ops__maintenance_runs') }}

),

findings as (

    select * from {{ ref('stg_ml_ops__maintenance_findings') }}

),

finding_counts as (

    select
        maintenance_run_id,
        count(*) filter (where severity = 'error') as error_findings,
        count(*) filter (where severity = 'warn') as warn_findings,
        count(*) filter (where severity = 'info') as info_findings,
        count(*) filter (where action_status = 'done') as actions_done,
        count(*) filter (where action_status = 'failed') as actions_failed,
        count(*) filter (where action_status = 'skipped') as actions_skipped,
        count(*) filter (where action_status = 'proposed') as actions_proposed
    from findings
    group by maintenance_run_id

),

final as (

    select
        runs.maintenance_run_id,
        runs.started_at,
        runs.started_date,
        runs.finished_at,
        runs.duration_seconds,
        runs.run_status,
        runs.is_apply,
        runs.is_forced,
        runs.fail_on,
        runs.findings_count,
        runs.open_findings_count,
        runs.highest_severity,
        runs.run_error,
        coalesce(finding_counts.error_findings, 0) as error_findings,
        coalesce(finding_counts.warn_findings, 0) as warn_findings,
        coalesce(finding_counts.info_findings, 0) as info_findings,
        coalesce(finding_counts.actions_done, 0) as actions_done,
        coalesce(finding_counts.actions_failed, 0) as actions_failed,
        coalesce(finding_counts.actions_skipped, 0) as actions_skipped,
        coalesce(finding_counts.actions_proposed, 0) as actions_proposed
    from runs
    left join finding_counts on runs.maintenance_run_id = finding_counts.maintenance_run_id

)

select * from final
