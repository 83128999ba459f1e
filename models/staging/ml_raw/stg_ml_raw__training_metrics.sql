with

renamed as (

    select
        training_metric_id,
        model_id,
        training_session_id,
        metrics,
        epoch,
        step,
        trained_at
    from {{ source('ml_raw', 'training_metrics') }}

)

select * from renamed
