{#
    Feedback about no prediction is stored under the nil UUID (migration 0060): prediction_id
    is null for it, as before. prediction_key is the stored column itself, the distribution
    column of a distributed warehouse, for joins that must stay on one shard
    (docs/requirements.md#scale-out).
#}
with

renamed as (

    select
        feedback_id,
        created_at,
        prediction_id as prediction_key,
        service_name,
        feedback_type,
        rating,
        corrected_value,
        comment,
        user_id,
        context,
        ingested_at,
        nullif(prediction_id, '00000000-0000-0000-0000-000000000000'::uuid) as prediction_id,
        (created_at at time zone 'UTC')::date as created_date
    from {{ source('ml_raw', 'ml_feedback') }}

)

select * from renamed
