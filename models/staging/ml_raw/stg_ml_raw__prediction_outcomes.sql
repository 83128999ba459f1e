{#
    Outcomes still in ml_raw and those retention has archived with their predictions
    (ml_archive, same columns, disjoint periods); see stg_ml_raw__predictions.
#}
with

raw as (

    select
        outcome_id,
        observed_at,
        prediction_id,
        actual_value,
        prediction_created_at,
        source,
        ingested_at
    from {{ source('ml_raw', 'ml_prediction_outcomes') }}

),

archived as (

    select
        outcome_id,
        observed_at,
        prediction_id,
        actual_value,
        prediction_created_at,
        source,
        ingested_at
    from {{ source('ml_archive', 'ml_prediction_outcomes') }}

),

source as (

    select * from raw
    union all
    select * from archived

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
