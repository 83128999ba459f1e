{# Implementation of the `expression_is_true` generic test (tests/generic/expression_is_true.sql). #}
{% macro default__test_expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endmacro %}
