{#
    Implementation of the `not_empty` generic test (tests/generic/not_empty.sql).
    Parameters: model.
    Example: {{ default__test_not_empty(ref('mart_service_health')) }}
#}
{% macro default__test_not_empty(model) %}
    select 'no rows' as reason
    where not exists (select 1 from {{ model }})
{% endmacro %}
