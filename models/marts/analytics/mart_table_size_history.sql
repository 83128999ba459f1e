{#
    The size of every warehouse table, once a day: the history mart_table_sizes reads growth
    from. Each run replaces today's rows with a fresh measurement (delete+insert on
    measured_date), so a day keeps its last measurement and earlier days stay as they were.

    full_refresh=false: `dbt run --full-refresh` leaves this table alone, since a history
    cannot be rebuilt from the present. To start it over, drop the table.
#}
{{
    config(
        materialized='incremental',
        unique_key='measured_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false,
        contract={'enforced': true},
    )
}}

with

measured as (

    select * from {{ ref('int_table_sizes_measured') }}

),

final as (

    select
        {{ surrogate_key(['(measured_at at time zone \'UTC\')::date', 'table_id']) }}
            as table_size_snapshot_id,
        (measured_at at time zone 'UTC')::date as measured_date,
        table_id,
        schema_name,
        table_name,
        partition_count,
        size_bytes,
        measured_at
    from measured

)

select * from final
