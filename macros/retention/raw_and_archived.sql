{#
    The rows of a source whose expired partitions retention archives: ml_raw.<table> union all
    ml_archive.<table> (same columns, disjoint periods), each naming `columns` so that the view
    depends on those columns only (docs/requirements.md#archive). PostgreSQL pushes a filter on
    the view into both branches, so partition pruning and the BRIN indexes still apply.
    Views whose tables a distributed warehouse spreads by prediction_id list it first: Citus
    joins two such unions on the workers only when it has the same position in both
    (docs/requirements.md#scale-out).
    Parameters: table (the source table name in both schemas), columns (list of column names).
    Example: source as ({{ raw_and_archived('ml_predictions', ['prediction_id', 'created_at']) }})
#}
{% macro raw_and_archived(table, columns) %}
    {%- for schema in ['ml_raw', 'ml_archive'] %}
        select
            {{ columns | join(',\n            ') }}
        from {{ source(schema, table) }}
        {%- if not loop.last %}
        union all
        {%- endif %}
    {%- endfor %}
{% endmacro %}
