{#
    The planner's row estimate of every table whose rows live in Citus shards, summed over its
    shards (their pg_class.reltuples, read on every node at once), one placement each: on a
    Citus coordinator the partition's own reltuples are the empty local shell's
    (docs/requirements.md#scale-out). A query of (relation_oid, estimated_rows, is_analyzed),
    is_analyzed false when a shard was never analyzed (its estimate is unknown, not 0); on a
    single node it returns no row, so callers fall back to pg_class.reltuples.
    Example: left join ({{ citus_row_estimates() }}) as shard_rows on ...
#}
{% macro citus_row_estimates() %}
    {%- if ml_warehouse.citus_present() -%}
        select
            placements.table_name::oid as relation_oid,
            sum(greatest(shard_stats.reltuples, 0))::bigint as estimated_rows,
            coalesce(bool_and(shard_stats.reltuples >= 0), false) as is_analyzed
        from (
            select distinct on (citus_shards.shardid)
                citus_shards.table_name,
                citus_shards.shard_name
            from citus_shards
            order by citus_shards.shardid
        ) as placements
        left join (
            select
                node_stats.key as shard_name,
                node_stats.value::float8 as reltuples
            from run_command_on_all_nodes($$
                select coalesce(json_object_agg(
                    c.relnamespace::regnamespace::text || '.' || c.relname, c.reltuples
                ), '{}')
                from pg_class as c
                where c.relkind = 'r' and c.relname ~ '_[0-9]+$'
                    and c.relnamespace in ('ml_raw'::regnamespace, 'ml_archive'::regnamespace)
            $$) as nodes
            cross join lateral json_each_text(nodes.result::json) as node_stats
            where nodes.success
        ) as shard_stats on placements.shard_name::text = shard_stats.shard_name
        group by placements.table_name
    {%- else -%}
        select
            null::oid as relation_oid,
            null::bigint as estimated_rows,
            null::boolean as is_analyzed
        where false
    {%- endif -%}
{% endmacro %}
