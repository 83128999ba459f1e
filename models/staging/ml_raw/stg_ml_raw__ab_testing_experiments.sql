with

renamed as (

    select
        ab_experiment_id,
        experiment_name,
        hypothesis,
        primary_metric,
        arms,
        control_arm,
        control_model_id,
        treatment_model_id,
        minimum_sample_size,
        significance_level,
        status,
        created_at,
        started_at,
        ended_at
    from {{ source('ml_raw', 'ab_testing_experiments') }}

)

select * from renamed
