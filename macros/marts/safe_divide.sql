{#
    Division that yields null instead of an error when the denominator is zero or null.
    Parameters: numerator, denominator (SQL expressions).
    Example: {{ safe_divide('count(*) filter (where is_correct)', 'count(*)') }}
#}
{% macro safe_divide(numerator, denominator) -%}
    ({{ numerator }})::double precision / nullif(({{ denominator }})::double precision, 0)
{%- endmacro %}
