with

source as (

    select * from {{ source('ml_raw', 'ml_prediction_outcomes') }}

),

renamed as (

    select
        outcome_id,
        observed_at,
        prediction_id,
        actual_value,
        prediction_created_at,
        source as outcome_source,
        ingested_at
    from source

)

select * from renamed
