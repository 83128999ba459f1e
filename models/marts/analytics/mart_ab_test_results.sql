{#
    A/B test results per experiment and arm (docs/requirements.md#ab-assignments): sample size,
    mean outcome with a 95% confidence interval (normal approximation), the difference to the
    control arm with a two-sided Welch z-test p-value, and a sample-ratio-mismatch check
    (chi-square of the assignment counts against the configured weights; p-value by the
    Wilson-Hilferty approximation; mismatch when p < 0.001).
#}
{{ config(contract={'enforced': true}) }}

with

experiments as (

    select * from {{ ref('stg_ml_raw__ab_testing_experiments') }}

),

assignments as (

    select * from {{ ref('stg_ml_raw__ab_test_assignments') }}

),

weights as (

    select
        experiments.ab_experiment_id,
        arm_weight.value ->> 'arm' as arm,
        (arm_weight.value ->> 'weight')::double precision
        / sum((arm_weight.value ->> 'weight')::double precision)
            over (partition by experiments.ab_experiment_id) as expected_share
    from experiments
    cross join lateral jsonb_array_elements(experiments.arms) as arm_weight (value)

),

arms as (

    select
        ab_experiment_id,
        arm,
        count(*)::bigint as assigned_count,
        count(outcome_value)::bigint as outcome_count,
        avg(outcome_value) as mean_outcome,
        stddev_samp(outcome_value) as outcome_stddev
    from assignments
    group by ab_experiment_id, arm

),

with_control as (

    select
        arms.*,
        experiments.experiment_name,
        experiments.primary_metric,
        experiments.significance_level,
        weights.expected_share,
        control.mean_outcome as control_mean,
        control.outcome_stddev as control_stddev,
        control.outcome_count as control_count,
        arms.arm = experiments.control_arm as is_control,
        arms.assigned_count::double precision
        / sum(arms.assigned_count) over (partition by arms.ab_experiment_id) as observed_share,
        sum(arms.assigned_count) over (partition by arms.ab_experiment_id) as experiment_count
    from arms
    inner join experiments on arms.ab_experiment_id = experiments.ab_experiment_id
    left join weights
        on arms.ab_experiment_id = weights.ab_experiment_id and arms.arm = weights.arm
    left join arms as control
        on
            arms.ab_experiment_id = control.ab_experiment_id
            and experiments.control_arm = control.arm

),

srm as (

    select
        ab_experiment_id,
        sum(
            power(assigned_count - expected_share * experiment_count, 2)
            / nullif(expected_share * experiment_count, 0)
        ) as srm_chi_square,
        count(*) - 1 as srm_degrees_of_freedom
    from with_control
    group by ab_experiment_id

),

tested as (

    select
        with_control.*,
        srm.srm_chi_square,
        srm.srm_degrees_of_freedom,
        with_control.mean_outcome - with_control.control_mean as diff_vs_control,
        (with_control.mean_outcome - with_control.control_mean) / nullif(sqrt(
            power(with_control.outcome_stddev, 2) / nullif(with_control.outcome_count, 0)
            + power(with_control.control_stddev, 2) / nullif(with_control.control_count, 0)
        ), 0) as z_score,
        {# Wilson-Hilferty: (X/k)^(1/3) is about normal with mean 1 - 2/(9k), var 2/(9k). #}
        (
            power(srm.srm_chi_square / nullif(srm.srm_degrees_of_freedom, 0), 1.0 / 3)
            - (1 - 2.0 / (9 * srm.srm_degrees_of_freedom))
        ) / nullif(sqrt(2.0 / (9 * srm.srm_degrees_of_freedom)), 0) as srm_z
    from with_control
    inner join srm on with_control.ab_experiment_id = srm.ab_experiment_id

),

final as (

    select
        {{ surrogate_key(['ab_experiment_id', 'arm']) }} as ab_test_result_id,
        ab_experiment_id,
        experiment_name,
        primary_metric,
        arm,
        is_control,
        assigned_count,
        outcome_count,
        expected_share,
        observed_share,
        mean_outcome,
        outcome_stddev,
        mean_outcome - 1.959963984540054 * outcome_stddev / sqrt(nullif(outcome_count, 0))
            as ci95_lower,
        mean_outcome + 1.959963984540054 * outcome_stddev / sqrt(nullif(outcome_count, 0))
            as ci95_upper,
        case when not is_control then diff_vs_control end as diff_vs_control,
        case
            when not is_control then 2 * (1 - {{ normal_cdf('abs(z_score)') }})
        end as p_value,
        case
            when not is_control
                then 2 * (1 - {{ normal_cdf('abs(z_score)') }}) < significance_level
        end as is_significant,
        srm_chi_square,
        1 - {{ normal_cdf('srm_z') }} as srm_p_value,
        coalesce(1 - {{ normal_cdf('srm_z') }} < 0.001, false) as has_sample_ratio_mismatch
    from tested

)

select * from final
