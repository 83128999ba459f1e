{#
    Outcomes still in ml_raw and those retention has archived with their predictions
    (ml_archive, same columns, disjoint periods); see stg_ml_raw__predictions. prediction_id
    comes first, as in stg_ml_raw__predictions: on a distributed warehouse Citus joins two
    such unions on the workers only when the distribution column has the same position in
    both (docs/requirements.md#scale-out).
#}
{%- set columns = [
    'prediction_id',
    'outcome_id',
    'observed_at',
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
        prediction_id,
        outcome_id,
        observed_at,
        actual_value,
        prediction_created_at,
        source as outcome_source,
        ingested_at
    from source

)

select * from renamed
