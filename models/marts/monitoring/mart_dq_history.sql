{#
    One row per check result per `mlwh check` run, with the run's summary alongside, for
    charting data quality over time (elementary-style history: appended, never replaced).
    A view: the history is appended by every `mlwh check`, so charts read it live.
#}
{{ config(materialized='view') }}

with

dq_results as (

    select * from {{ ref('stg_ml_ops__dq_results') }}

),

final as (

    select
        dq_result_id,
        run_id,
        checked_at,
        checked_date,
        check_name,
        node_unique_id,
        resource_type,
        severity,
        check_status,
        failing_rows,
        observed_value,
        threshold,
        message,
        execution_seconds,
        check_status = 'pass' as is_passing,
        count(*) over (partition by run_id) as run_checks_total,
        count(*) filter (where check_status = 'pass') over (partition by run_id)
            as run_checks_passed
    from dq_results

)

select * from final
