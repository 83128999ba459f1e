{#
    The guide's "database size" query (docs/requirements.md#monitoring-queries): table sizes,
    partitions rolled up.
#}
with

sizes as (

    select * from {{ ref('mart_table_sizes') }}

),

final as (

    select
        schema_name,
        table_name,
        size_pretty as size,
        size_bytes
    from sizes

)

select * from final
order by size_bytes desc
