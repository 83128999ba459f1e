{#
    Implementation of the `monitoring_alert` generic test (tests/generic/monitoring_alert.sql).
    Parameters: model (mart_monitoring_alerts), metrics (non-empty list), alert_severity (warn,
        error or none for both).
    Example: {{ default__test_monitoring_alert(ref('mart_monitoring_alerts'), ['writer_queue']) }}
#}
{% macro default__test_monitoring_alert(model, metrics, alert_severity=none) %}
    {%- if metrics is string or metrics is not iterable or metrics | length == 0 -%}
        {{ exceptions.raise_compiler_error("monitoring_alert needs a non-empty list in metrics") }}
    {%- endif -%}
    {%- if alert_severity not in [none, 'warn', 'error'] -%}
        {{ exceptions.raise_compiler_error(
            "monitoring_alert alert_severity must be warn or error, got " ~ alert_severity) }}
    {%- endif -%}
    with

    alerts as (

        select * from {{ model }}

    ),

    final as (

        select
            entity_type,
            entity,
            alert_date,
            metric,
            observed_value,
            threshold,
            severity,
            message
        from alerts
        where metric in (
            {%- for metric in metrics %}
            {{ sql_literal(metric) }}{{ "," if not loop.last }}
            {%- endfor %}
        )
        {%- if alert_severity is not none %}
            and severity = {{ sql_literal(alert_severity) }}
        {%- endif %}

    )

    select * from final
{% endmacro %}
