{#
    dbt-postgres refreshes a materialized view with a plain REFRESH, which takes an exclusive
    lock and blocks every reader for the whole refresh. Refresh CONCURRENTLY instead: readers
    keep seeing the previous contents until the new ones are swapped in. CONCURRENTLY needs a
    unique index on plain columns, so every materialized view in this project configures
    `indexes: [{columns: [...], unique: true}]`; without one, fall back to a plain refresh.
    Parameters: relation (the materialized view).
    Overrides: postgres__refresh_materialized_view (dbt-postgres 1.11,
    macros/relations/materialized_view/refresh.sql); dispatch finds the root project's first.
#}
{% macro postgres__refresh_materialized_view(relation) %}
    {%- set unique_indexes = [] -%}
    {%- for index in config.get('indexes', []) or [] -%}
        {%- if index.get('unique') -%}
            {%- do unique_indexes.append(index) -%}
        {%- endif -%}
    {%- endfor -%}
    refresh materialized view {{ 'concurrently' if unique_indexes else '' }} {{ relation }}
{% endmacro %}
