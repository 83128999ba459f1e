{# LLM usage and cost per UTC day, provider and model
   (ml_raw.llm_interactions, docs/requirements.md#source-learning-schema). #}
{{ config(contract={'enforced': true}) }}

with

interactions as (

    select * from {{ ref('stg_ml_raw__llm_interactions') }}

),

daily as (

    select
        provider,
        model_name,
        (created_at at time zone 'UTC')::date as metric_date,
        count(*)::bigint as interaction_count,
        count(*) filter (where error_message is not null)::bigint as error_count,
        coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
        coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
        coalesce(sum(total_tokens), 0)::bigint as total_tokens,
        coalesce(sum(cost_usd), 0)::numeric as cost_usd,
        avg(latency_ms) as avg_latency_ms,
        percentile_cont(0.95) within group (order by latency_ms) as p95_latency_ms
    from interactions
    group by (created_at at time zone 'UTC')::date, provider, model_name

),

final as (

    select
        {{ surrogate_key(['metric_date', 'provider', 'model_name']) }} as llm_usage_daily_id,
        metric_date,
        provider,
        model_name,
        interaction_count,
        error_count,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cost_usd,
        {{ safe_divide('cost_usd', 'interaction_count') }} as cost_per_interaction_usd,
        avg_latency_ms,
        p95_latency_ms
    from daily

)

select * from final
