{#
    on-run-end hook: USAGE on the schemas of this run's marts and seeds for the analyst role, and
    on ml_ref for the writers and the owner too (the ids trigger reads it). dbt's grants config
    grants the relations; a role also needs USAGE on their schema to reach them. Staging and
    intermediate schemas get nothing: their views read raw rows with the owner's rights
    (docs/requirements.md#least-privilege).
    Parameters: schemas, the `schemas` context variable of on-run-end.
    Example (dbt_project.yml): on-run-end: ["{{ grant_schema_usage(schemas) }}"]
#}
{% macro grant_schema_usage(schemas) %}
    {%- for schema in schemas if 'staging' not in schema and 'intermediate' not in schema %}
        grant usage on schema {{ adapter.quote(schema) }} to mlwh_analyst;
        {%- if schema == 'ml_ref' %}
            grant usage on schema {{ adapter.quote(schema) }} to mlwh_ingest, mlwh_service, mlwh_owner;
        {%- endif %}
    {%- endfor %}
{% endmacro %}
