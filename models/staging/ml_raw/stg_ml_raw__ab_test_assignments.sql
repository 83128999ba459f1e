with

renamed as (

    select
        ab_test_assignment_id,
        ab_experiment_id,
        arm,
        unit_id,
        assigned_at,
        outcome_value,
        outcome_observed_at,
        context
    from {{ source('ml_raw', 'ab_test_assignments') }}

)

select * from renamed
