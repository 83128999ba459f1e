{#
    Outcomes still in ml_raw and those retention has archived with their predictions
    (ml_archive, same columns, disjoint periods); see stg_ml_raw__predictions.
#}
{%- set columns = [
    'outcome_id',
    'observed_at',
    'prediction_id',
    'actual_value',
    'prediction_created_at',
    'source',
    'ingested_at',
] -%}

with

source as (

    {{ raw_and_archived('ml_prediction_outcomes', columns) }}

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
