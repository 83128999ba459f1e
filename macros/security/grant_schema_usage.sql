{#
    on-run-end hook: USAGE on the schemas of this run's nodes for the analyst role, and on ml_ref
    for the writers too. dbt's grants config grants the relations; a role also needs USAGE on
    their schema to reach them (docs/requirements.md#least-privilege).
    Parameters: schemas, the `schemas` context variable of on-run-end.
    Example (dbt_project.yml): on-run-end: ["{{ grant_schema_usage(schemas) }}"]
#}
{% macro grant_schema_usage(schemas) %}
    {%- for schema in schemas %}
        grant usage on schema {{ adapter.quote(schema) }} to mlwh_analyst;
        {%- if schema == 'ml_ref' %}
            grant usage on schema {{ adapter.quote(schema) }} to mlwh_ingest, mlwh_service;
        {%- endif %}
    {%- endfor %}
{% endmacro %}
