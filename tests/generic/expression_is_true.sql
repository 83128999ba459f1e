{#
    Fails for every row where the SQL expression is not true (false or null).
    Parameters: expression (a boolean SQL expression over the model's columns).
    Example:
        - expression_is_true:
            arguments: {expression: "expected_daily_max >= expected_daily_min"}
#}
{% test expression_is_true(model, expression, column_name=none) %}
    {{ return(adapter.dispatch('test_expression_is_true', 'ml_warehouse')(model, expression)) }}
{% endtest %}
