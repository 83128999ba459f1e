with

renamed as (

    select
        training_session_id,
        model_id,
        dataset_id,
        status,
        total_epochs,
        completed_epochs,
        hyperparameters,
        training_loss,
        validation_loss,
        metrics,
        started_at,
        finished_at,
        error_message
    from {{ source('ml_raw', 'model_training_sessions') }}

)

select * from renamed
