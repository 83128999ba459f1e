{#
    Seed 000's "database size" query for the warehouse schemas: every table with its total size
    (partitions rolled up into their parent), as of the build. Rebuilt on every run; growth
    needs a history of snapshots, which this project does not keep yet (see the report).
#}
{{ config(contract={'enforced': true}) }}

with

relations as (

    select
        pg_class.oid as relation_oid,
        pg_namespace.nspname as schema_name,
        pg_class.relname as table_name,
        pg_class.relkind
    from pg_catalog.pg_class
    inner join pg_catalog.pg_namespace on pg_class.relnamespace = pg_namespace.oid
    where
        pg_namespace.nspname in ('ml_raw', 'ml_ops', 'ml_marts', 'ml_archive', 'ml_ref', 'ml_dq')
        and pg_class.relkind in ('r', 'p', 'm')
        and not pg_class.relispartition

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
                    select coalesce(sum(pg_total_relation_size(tree.relid)), 0)
                    from pg_partition_tree(relations.relation_oid) as tree
                )
            else pg_total_relation_size(relations.relation_oid)
        end::bigint as size_bytes
    from relations

),

final as (

    select
        schema_name,
        table_name,
        is_partitioned,
        partition_count,
        size_bytes,
        schema_name || '.' || table_name as table_id,
        pg_size_pretty(size_bytes) as size_pretty,
        now() as measured_at
    from sized

)

select * from final
