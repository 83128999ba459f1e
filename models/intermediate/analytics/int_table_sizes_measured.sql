{#
    The monitoring guide's "database size" query (docs/requirements.md#alert-database-size)
    for the warehouse schemas: every table with its total
    size (partitions rolled up into their parent), measured when it runs. On a Citus
    coordinator a table whose rows live in shards is measured over its shards
    (citus_relation_sizes, docs/requirements.md#scale-out). Ephemeral: measured
    once into mart_table_size_history and once, live, into mart_table_sizes.
#}
{{ config(materialized='ephemeral') }}

with

relations as (

    select
        pg_class.oid as relation_oid,
        pg_namespace.nspname::text as schema_name,
        pg_class.relname::text as table_name,
        pg_class.relkind
    from pg_catalog.pg_class
    inner join pg_catalog.pg_namespace on pg_class.relnamespace = pg_namespace.oid
    where
        pg_namespace.nspname in (
            'ml_raw', 'ml_ops', 'ml_intermediate', 'ml_marts', 'ml_archive', 'ml_ref', 'ml_dq'
        )
        and pg_class.relkind in ('r', 'p', 'm')
        and not pg_class.relispartition

),

citus_sizes as (

    {{ citus_relation_sizes() }}

),

sized as (

    select
        relations.schema_name,
        relations.table_name,
        relations.relkind = 'p' as is_partitioned,
        coalesce((
            select count(*)
            from pg_partition_tree(relations.relation_oid) as tree
            where tree.isleaf and tree.relid <> relations.relation_oid
        ), 0)::bigint as partition_count,
        case
            when relations.relkind = 'p'
                then (
                    select
                        coalesce(sum(
                            coalesce(leaf_sizes.size_bytes, pg_total_relation_size(tree.relid))
                        ), 0)
                    from pg_partition_tree(relations.relation_oid) as tree
                    left join citus_sizes as leaf_sizes on tree.relid = leaf_sizes.relation_oid
                )
            else coalesce(citus_sizes.size_bytes, pg_total_relation_size(relations.relation_oid))
        end::bigint as size_bytes
    from relations
    left join citus_sizes on relations.relation_oid = citus_sizes.relation_oid

),

final as (

    select
        schema_name,
        table_name,
        is_partitioned,
        partition_count,
        size_bytes,
        schema_name || '.' || table_name as table_id,
        now() as measured_at
    from sized

)

select * from final
