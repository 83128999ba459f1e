{#
    Fails for every combination of the given columns that occurs more than once.
    Parameters: combination_of_columns (list of column names, at least one).
    Example:
        - unique_combination_of_columns:
            arguments: {combination_of_columns: [service_name, created_date]}
#}
{% test unique_combination_of_columns(model, combination_of_columns, column_name=none) %}
    {{ return(adapter.dispatch('test_unique_combination_of_columns', 'ml_warehouse')(
        model, combination_of_columns)) }}
{% endtest %}
