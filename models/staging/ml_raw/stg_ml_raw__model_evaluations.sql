with

renamed as (

    select
        evaluation_id,
        model_id,
        dataset_id,
        training_session_id,
        evaluation_type,
        accuracy,
        precision_score,
        recall,
        f1_score,
        metrics,
        evaluated_at
    from {{ source('ml_raw', 'model_evaluations') }}

)

select * from renamed
