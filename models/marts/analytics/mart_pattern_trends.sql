{# Detected patterns per UTC day: occurrences and mean detection confidence
   (docs/requirements.md#source-learning-schema). #}
{{ config(contract={'enforced': true}) }}

with

patterns as (

    select * from {{ ref('stg_ml_raw__identified_patterns') }}

),

occurrences as (

    select * from {{ ref('stg_ml_raw__pattern_occurrences') }}

),

daily as (

    select
        pattern_id,
        (detected_at at time zone 'UTC')::date as metric_date,
        count(*)::bigint as occurrence_count,
        count(distinct source_id)::bigint as source_count,
        avg(confidence) as avg_confidence
    from occurrences
    group by pattern_id, (detected_at at time zone 'UTC')::date

),

final as (

    select
        {{ surrogate_key(['daily.pattern_id', 'daily.metric_date']) }} as pattern_trend_id,
        daily.metric_date,
        daily.pattern_id,
        patterns.pattern_type,
        patterns.pattern_name,
        daily.occurrence_count,
        daily.source_count,
        daily.avg_confidence,
        daily.occurrence_count - lag(daily.occurrence_count) over (
            partition by daily.pattern_id order by daily.metric_date
        ) as occurrence_change
    from daily
    left join patterns on daily.pattern_id = patterns.pattern_id

)

select * from final
