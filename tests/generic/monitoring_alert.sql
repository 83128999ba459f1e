{#
    Fails for every active alert of mart_monitoring_alerts on one of `metrics` (and of
    `alert_severity`, when given), so each kind of alert is a named `mlwh check` result whose
    message is the alert's own line.
    Parameters: metrics (non-empty list of metric names), alert_severity (warn or error,
        optional).
    Example:
        - monitoring_alert:
            name: assert_no_drift
            arguments: {metrics: [psi_predicted_value, psi_confidence], alert_severity: error}
            config: {severity: error}
#}
{% test monitoring_alert(model, metrics, alert_severity=none, column_name=none) %}
    {{ return(adapter.dispatch('test_monitoring_alert', 'ml_warehouse')(
        model, metrics, alert_severity)) }}
{% endtest %}
