{#
    The "database size" monitoring query (docs/requirements.md#alert-database-size) for the
    warehouse schemas: every table with its total size
    (partitions rolled up into their parent), as of the build, and its growth since the newest
    measurement of an earlier day in mart_table_size_history (null until such a day exists:
    the history starts with the first build and gains a day per day with a build).
#}
{{ config(contract={'enforced': true}) }}

with

measured as (

    select * from {{ ref('int_table_sizes_measured') }}

),

history as (

    select * from {{ ref('mart_table_size_history') }}

),

previous as (

    select distinct on (history.table_id)
        history.table_id,
        history.measured_at as previous_measured_at,
        history.size_bytes as previous_size_bytes
    from history
    where history.measured_date < (now() at time zone 'UTC')::date
    order by history.table_id asc, history.measured_date desc

),

final as (

    select
        measured.table_id,
        measured.schema_name,
        measured.table_name,
        measured.is_partitioned,
        measured.partition_count,
        measured.size_bytes,
        measured.measured_at,
        previous.previous_measured_at,
        previous.previous_size_bytes,
        pg_size_pretty(measured.size_bytes) as size_pretty,
        measured.size_bytes - previous.previous_size_bytes as growth_bytes,
        (measured.size_bytes - previous.previous_size_bytes)::double precision * 86400
        / extract(epoch from measured.measured_at - previous.previous_measured_at)::double precision
            as growth_bytes_per_day
    from measured
    left join previous on measured.table_id = previous.table_id

)

select * from final
