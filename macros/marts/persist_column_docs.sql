{#
    Column descriptions of a materialized view, as persist_docs writes them for tables and
    views: dbt-postgres looks a relation's columns up in information_schema.columns, which
    has no materialized views, so persist_docs skips every column of one. Called as a
    post_hook; a documented column that does not exist fails the build.
    Parameters: relation (this), model (the node, for its columns and descriptions).
    Example: post_hook="{{ persist_column_docs(this, model) }}"
#}
{% macro persist_column_docs(relation, model) -%}
    {%- for name, column in model.columns.items() if column.description -%}
        comment on column {{ relation }}.{{ adapter.quote(name) }}
        is {{ postgres_escape_comment(column.description) }};
    {% endfor -%}
{%- endmacro %}
