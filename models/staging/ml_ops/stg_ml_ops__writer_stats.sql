with

renamed as (

    select
        writer_stats_id,
        recorded_at,
        writer_id,
        host,
        pid,
        queued,
        written,
        spilled,
        replayed,
        rejected,
        duplicates,
        flush_p50_ms,
        flush_p95_ms,
        flush_p99_ms
    from {{ source('ml_ops', 'writer_stats') }}

)

select * from renamed
