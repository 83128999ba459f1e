{#
    A text key for a row of a composite grain: md5 of the columns joined with '|', nulls as ''.
    Parameters: columns (list of SQL expressions).
    Example: {{ surrogate_key(['metric_date', 'service_name']) }} as performance_daily_id
#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|'
    {%- for column in columns -%}
        , coalesce(({{ column }})::text, '')
    {%- endfor -%}
    ))
{%- endmacro %}
