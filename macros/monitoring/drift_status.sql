{#
    A day's drift verdict, in one place: mart_drift_daily's drift_status column and the drift
    alerts of mart_monitoring_alerts both call it (docs/requirements.md#drift-status), so no
    analyst copies the thresholds. 'drift' above alert_psi_error, 'warn' above alert_psi_warn,
    else 'ok'; a day with fewer than drift_alert_min_rows values (or no PSI, for want of a
    reference) is 'ok': its PSI is sampling noise.
    Parameters: psi, current_count (SQL expressions of one row).
    Example: {{ drift_status('psi', 'current_count') }} as drift_status
#}
{% macro drift_status(psi, current_count) -%}
    case
        when
            {{ psi }} is null
            or {{ current_count }} < {{ var('drift_alert_min_rows') | int }}
            then 'ok'
        when {{ psi }} > {{ var('alert_psi_error') }} then 'drift'
        when {{ psi }} > {{ var('alert_psi_warn') }} then 'warn'
        else 'ok'
    end
{%- endmacro %}
