{#
    Fails for every row whose column lies outside [min_value, max_value] (either bound optional).
    Parameters: min_value, max_value, inclusive (default true).
    Example:
        - accepted_range:
            arguments: {min_value: 0, max_value: 1}
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
    {{ return(adapter.dispatch('test_accepted_range', 'ml_warehouse')(
        model, column_name, min_value, max_value, inclusive)) }}
{% endtest %}
