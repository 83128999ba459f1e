{#
    Custom schemas are used as written (`ml_marts`, not `<target>_ml_marts`): the schema names
    are the public interface analysts and services rely on.
    Parameters: custom_schema_name (the +schema config, or none), node.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
