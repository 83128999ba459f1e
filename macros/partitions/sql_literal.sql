{#
    A PostgreSQL string literal for a value known only at run time (quotes doubled).
    Parameters: value (any; rendered as text). Example: {{ sql_literal("it's") }} -> 'it''s'
#}
{% macro sql_literal(value) %}
    {{- return("'" ~ (value | string | replace("'", "''")) ~ "'") -}}
{% endmacro %}
