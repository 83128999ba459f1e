{#
    Fails (one row) when the model has no rows.
    Parameters: none.
    Example:
        - not_empty
#}
{% test not_empty(model, column_name=none) %}
    {{ return(adapter.dispatch('test_not_empty', 'ml_warehouse')(model)) }}
{% endtest %}
