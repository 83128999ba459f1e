{#
    LLM interactions still in ml_raw and those retention has archived after a year
    (ml_archive, same columns, disjoint months), for cost history; see stg_ml_raw__predictions.
#}
{%- set columns = [
    'llm_interaction_id',
    'created_at',
    'experiment_id',
    'individual_id',
    'provider',
    'model_name',
    'purpose',
    'prompt_tokens',
    'completion_tokens',
    'total_tokens',
    'cost_usd',
    'latency_ms',
    'status',
    'request',
    'response',
    'error_message',
] -%}

with

source as (

    {{ raw_and_archived('llm_interactions', columns) }}

),

renamed as (

    select
        llm_interaction_id,
        created_at,
        experiment_id,
        individual_id,
        provider,
        model_name,
        purpose,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cost_usd,
        latency_ms,
        status,
        request,
        response,
        error_message
    from source

)

select * from renamed
