{#
    An input feature's drift verdict for a day, in one place: mart_feature_drift_daily's
    drift_status column and the feature alerts of mart_feature_alerts both call it
    (docs/requirements.md#feature-drift). The worse of two verdicts:
    - the distribution: the drift_status macro on PSI ('drift' above alert_psi_error, 'warn'
      above alert_psi_warn, 'ok' below drift_alert_min_rows values), as for the outputs;
    - the missing values: the change of the missing share against the reference, in either
      direction, 'drift' above alert_missing_share_change_error, 'warn' above
      alert_missing_share_change_warn, 'ok' on a day with fewer than drift_alert_min_rows
      predictions.
    Parameters: psi, current_count (values present), missing_share_change, prediction_count
    (SQL expressions of one row).
    Example: {{ feature_drift_status('psi', 'current_count', 'missing_share_change',
        'prediction_count') }} as drift_status
#}
{% macro feature_drift_status(psi, current_count, missing_share_change, prediction_count) -%}
    {%- set distribution = drift_status(psi, current_count) -%}
    {%- set missing = missing_share_status(missing_share_change, prediction_count) -%}
    case
        when {{ distribution }} = 'drift' or {{ missing }} = 'drift' then 'drift'
        when {{ distribution }} = 'warn' or {{ missing }} = 'warn' then 'warn'
        else 'ok'
    end
{%- endmacro %}

{#
    The missing-value half of feature_drift_status alone: 'drift', 'warn' or 'ok' for the
    change of a feature's missing share (the alerts report it under its own metric).
    Parameters: missing_share_change, prediction_count (SQL expressions of one row).
    Example: {{ missing_share_status('missing_share_change', 'prediction_count') }}
#}
{% macro missing_share_status(missing_share_change, prediction_count) -%}
    case
        when {{ prediction_count }} < {{ var('drift_alert_min_rows') | int }} then 'ok'
        when abs({{ missing_share_change }}) > {{ var('alert_missing_share_change_error') }}
            then 'drift'
        when abs({{ missing_share_change }}) > {{ var('alert_missing_share_change_warn') }}
            then 'warn'
        else 'ok'
    end
{%- endmacro %}
