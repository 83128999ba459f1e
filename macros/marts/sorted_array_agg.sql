{#
    The values of `expression` in one ascending array (an aggregate). PostgreSQL 18 sorts a
    collected array in memory with array_sort(), cheaper than an ordered aggregate's sort of
    tuples; on 15 to 17, which lack array_sort, the ordered aggregate gives the same array
    (docs/requirements.md#postgres-15). The server's version is read once per compilation.
    Parameters: expression (SQL text).
    Example: {{ sorted_array_agg('feature_value') }} as sorted_values
#}
{% macro sorted_array_agg(expression) %}
    {%- if execute and server_version_num() >= 180000 -%}
        array_sort(array_agg({{ expression }}))
    {%- else -%}
        array_agg({{ expression }} order by {{ expression }})
    {%- endif -%}
{% endmacro %}

{% macro server_version_num() %}
    {%- if execute -%}
        {{ return(run_query("select current_setting('server_version_num')::int").columns[0].values()[0]) }}
    {%- endif -%}
    {{ return(0) }}
{% endmacro %}
