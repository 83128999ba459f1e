{#
    Fails when the newest value of `field` is older than `interval` `datepart`s ago, or when the
    model has no rows; with `group_by`, one failing row per stale group.
    Parameters: field (timestamp column), datepart (second, minute, hour, day, week, month,
        year), interval (positive integer), group_by (column, optional).
    Example:
        - recency:
            arguments: {field: created_at, datepart: minute, interval: 60, group_by: service_name}
#}
{% test recency(model, field, datepart, interval, group_by=none, column_name=none) %}
    {{ return(adapter.dispatch('test_recency', 'ml_warehouse')(
        model, field, datepart, interval, group_by)) }}
{% endtest %}
