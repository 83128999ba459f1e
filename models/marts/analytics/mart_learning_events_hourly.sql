{# Learning events per UTC hour, event type and source, with processing lag
   (docs/requirements.md#source-learning-schema). #}
{{ config(contract={'enforced': true}) }}

with

events as (

    select * from {{ ref('stg_ml_raw__learning_events') }}

),

hourly as (

    select
        occurred_hour,
        event_type,
        event_source,
        count(*)::bigint as event_count,
        count(processed_at)::bigint as processed_count,
        count(distinct session_id)::bigint as session_count,
        avg(processing_lag_seconds) as avg_processing_lag_seconds,
        percentile_cont(0.95) within group (order by processing_lag_seconds)
            as p95_processing_lag_seconds
    from events
    group by occurred_hour, event_type, event_source

),

final as (

    select
        {{ surrogate_key(['occurred_hour', 'event_type', 'event_source']) }}
            as learning_events_hourly_id,
        occurred_hour,
        event_type,
        event_source,
        event_count,
        processed_count,
        event_count - processed_count as unprocessed_count,
        session_count,
        avg_processing_lag_seconds,
        p95_processing_lag_seconds
    from hourly

)

select * from final
