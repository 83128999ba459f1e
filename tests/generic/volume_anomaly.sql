{#
    Fails for every group whose row count on the checked day is far from the same weekday of
    the previous `history_weeks` weeks: |z| > `sensitivity`, once at least `min_history_weeks`
    of those weekdays have rows. The checked day is yesterday (the newest whole day), today up
    to now with `include_today: true` (history weekdays cut at the same time of day), or the
    whole day `as_of`. A group that wrote nothing on the checked day counts as 0.
    Parameters: timestamp_column, group_by (column, optional), sensitivity, min_history_weeks,
        history_weeks (by default the vars alert_volume_sensitivity,
        alert_volume_min_history_weeks and alert_volume_history_weeks), include_today (false),
        as_of ('YYYY-MM-DD' or a SQL date expression, optional).
    Example:
        - volume_anomaly:
            arguments: {timestamp_column: created_at, group_by: service_name}
#}
{% test volume_anomaly(
    model, timestamp_column, group_by=none, sensitivity=none, min_history_weeks=none,
    history_weeks=none, include_today=false, as_of=none, column_name=none
) %}
    {{ return(adapter.dispatch('test_volume_anomaly', 'ml_warehouse')(
        model, timestamp_column, group_by, sensitivity, min_history_weeks, history_weeks,
        include_today, as_of)) }}
{% endtest %}
