{#
    Implementation of the `unique_combination_of_columns` generic test.
    Parameters: model, combination_of_columns (non-empty list of column names).
    Example: {{ default__test_unique_combination_of_columns(ref('m'), ['a', 'b']) }}
#}
{% macro default__test_unique_combination_of_columns(model, combination_of_columns) %}
    {%- if combination_of_columns is string or combination_of_columns is not iterable
        or combination_of_columns | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "unique_combination_of_columns needs a non-empty list in combination_of_columns") }}
    {%- endif -%}
    {%- set columns_csv = combination_of_columns | join(', ') -%}
    with

    final as (

        select
            {{ columns_csv }},
            count(*) as n_records
        from {{ model }}
        group by {{ columns_csv }}
        having count(*) > 1

    )

    select * from final
{% endmacro %}
