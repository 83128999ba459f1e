{#
    One row per alert threshold var with the value this build used
    (docs/requirements.md#alert-thresholds): the report and analysts read the numbers that
    mart_monitoring_alerts applied, not copies of them. A view, rebuilt with the alerts.
#}
{{ config(materialized='view') }}

{%- set threshold_names = [
    'alert_silent_error_minutes',
    'alert_writer_queue_max',
    'alert_database_max_bytes',
    'drift_alert_min_rows',
    'alert_psi_warn',
    'alert_psi_error',
    'alert_label_coverage_warn_ratio',
    'alert_label_coverage_error_ratio',
    'alert_volume_history_weeks',
    'alert_volume_min_history_weeks',
    'alert_volume_sensitivity',
    'alert_volume_error_ratio',
    'alert_maintenance_max_age_hours',
    'alert_write_latency_ms',
    'alert_learning_lag_minutes',
    'alert_error_rate_warn',
    'alert_dq_score_min',
    'alert_resource_max_pct',
    'alert_query_slowdown_ratio',
    'alert_query_min_runs',
    'alert_accuracy_drop_ratio',
    'alert_accuracy_min_labeled',
    'alert_job_overdue_intervals',
    'alert_missing_share_change_warn',
    'alert_missing_share_change_error',
    'alert_segment_accuracy_drop_ratio',
    'alert_segment_min_labeled',
    'alert_estimated_accuracy_min',
    'alert_estimated_min_predictions',
] -%}

with

thresholds as (

    select
        threshold_name,
        threshold_value
    from (
        values
        {%- for name in threshold_names %}
            ({{ sql_literal(name) }}, {{ var(name) }}::double precision)
            {{- "," if not loop.last }}
        {%- endfor %}
    ) as threshold_values (threshold_name, threshold_value)

),

final as (

    select
        threshold_name::text as threshold_name,
        threshold_value
    from thresholds

)

select * from final
