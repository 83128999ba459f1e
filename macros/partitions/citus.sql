{#
    Whether this database runs on a Citus coordinator (the citus extension is installed), and
    whether a table is distributed there (docs/requirements.md#scale-out). Partition upkeep and
    the size marts ask, so that one project serves a single node and a distributed warehouse.
    Read once per call; false when not executing (parsing, docs).
    Example: {% if citus_present() and citus_distributed('ml_raw.ml_predictions') %}
#}
{% macro citus_present() %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select exists (select 1 from pg_extension where extname = 'citus')") -%}
    {{ return(found.columns[0].values()[0]) }}
{% endmacro %}

{% macro citus_distributed(relation) %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select exists (select 1 from pg_dist_partition where logicalrelid = to_regclass("
        ~ ml_warehouse.sql_literal(relation) ~ "))") -%}
    {{ return(found.columns[0].values()[0]) }}
{% endmacro %}

{#
    The size in bytes of every table whose rows live in shards (a distributed or reference
    table, or a partition of one), summed over its shards, one placement each: on a Citus
    coordinator, pg_total_relation_size measures the empty local shell (docs/requirements.md#scale-out).
    A query of (relation_oid, size_bytes); on a single node it returns no row, so callers
    fall back to pg_total_relation_size. citus_shards asks every worker once.
    Example: left join ({{ citus_relation_sizes() }}) as citus_sizes on ...
#}
{% macro citus_relation_sizes() %}
    {%- if ml_warehouse.citus_present() -%}
        select
            placements.table_name::oid as relation_oid,
            sum(placements.shard_size)::bigint as size_bytes
        from (
            select distinct on (citus_shards.shardid)
                citus_shards.table_name,
                citus_shards.shard_size
            from citus_shards
            order by citus_shards.shardid
        ) as placements
        group by placements.table_name
    {%- else -%}
        select null::oid as relation_oid, null::bigint as size_bytes where false
    {%- endif -%}
{% endmacro %}

{#
    The size in bytes of this database: on a Citus coordinator, its own plus each worker's
    (the rows live there); on a single node, pg_database_size (docs/requirements.md#scale-out).
    Example: {{ warehouse_database_size() }} > {{ var('alert_database_max_bytes') }}
#}
{% macro warehouse_database_size() %}
    {%- if ml_warehouse.citus_present() -%}
        (pg_database_size(current_database()) + (
            select coalesce(sum(workers.result::bigint), 0)
            from run_command_on_workers('select pg_database_size(current_database())') as workers
            where workers.success
        ))
    {%- else -%}
        pg_database_size(current_database())
    {%- endif -%}
{% endmacro %}
