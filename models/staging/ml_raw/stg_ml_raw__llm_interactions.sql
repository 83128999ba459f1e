with

source as (

    select * from {{ source('ml_raw', 'llm_interactions') }}

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
