{#
    Post-hook of staging and intermediate models: a view runs with the privileges of the role that queries it
    (security_invoker, PostgreSQL 15+), so a view over ml_raw never lends its owner's access
    (docs/requirements.md#least-privilege). Renders nothing for tables.
    Example (dbt_project.yml): +post-hook: "{{ set_security_invoker() }}"
#}
{% macro set_security_invoker() %}
    {%- if model.config.materialized == 'view' -%}
        alter view {{ this }} set (security_invoker = true)
    {%- endif -%}
{% endmacro %}
