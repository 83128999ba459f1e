{#
    Predictions still in ml_raw and those retention has archived (ml_archive, same columns,
    disjoint periods), so that marts rebuilt by a full refresh keep their whole history
    (docs/requirements.md#archive). PostgreSQL pushes filters on this view into both branches:
    the incremental runs' created_at and ingested_at literals still prune partitions and use
    the BRIN indexes on ingested_at of both tables.
#}
{%- set columns = [
    'prediction_id',
    'created_at',
    'service_name',
    'prediction_type',
    'model_id',
    'model_version',
    'target_entity_type',
    'target_entity_id',
    'predicted_value',
    'prediction_payload',
    'confidence',
    'confidence_interval',
    'context',
    'source',
    'ingested_at',
] -%}

with

source as (

    {{ raw_and_archived('ml_predictions', columns) }}

),

renamed as (

    select
        prediction_id,
        created_at,
        service_name,
        prediction_type,
        model_id,
        model_version,
        target_entity_type,
        target_entity_id,
        predicted_value,
        prediction_payload,
        confidence,
        confidence_interval,
        context,
        source as prediction_source,
        ingested_at,
        (created_at at time zone 'UTC')::date as created_date
    from source

)

select * from renamed
