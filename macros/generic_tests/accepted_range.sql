{# Implementation of the `accepted_range` generic test (tests/generic/accepted_range.sql). #}
{% macro default__test_accepted_range(model, column_name, min_value, max_value, inclusive) %}
    {%- if min_value is none and max_value is none -%}
        {{ exceptions.raise_compiler_error(
            "accepted_range on " ~ column_name ~ " needs min_value or max_value") }}
    {%- endif -%}
    {%- set lower = ">=" if inclusive else ">" -%}
    {%- set upper = "<=" if inclusive else "<" -%}
    select *
    from {{ model }}
    where {{ column_name }} is not null
        and not (
            true
            {%- if min_value is not none %}
                and {{ column_name }} {{ lower }} {{ min_value }}
            {%- endif %}
            {%- if max_value is not none %}
                and {{ column_name }} {{ upper }} {{ max_value }}
            {%- endif %}
        )
{% endmacro %}
