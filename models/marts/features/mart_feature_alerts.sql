{#
    The alerts of the input features, the segments and the estimated performance, in the shape
    of mart_monitoring_alerts, which passes them on (docs/requirements.md#alert-features).
    Every threshold is a var of dbt_project.yml:
    - feature drift: the feature_drift_status macro's verdict for the last two days of
      mart_feature_drift_daily: PSI above alert_psi_warn (warn) / alert_psi_error (error) on
      days of drift_alert_min_rows values or more (metric feature_psi), and the change of the
      missing share above alert_missing_share_change_warn / _error (feature_missing_share);
    - worst segment: per service, prediction type and segment key, the segment value whose
      accuracy over the last 7 days is lowest, when it is more than
      alert_segment_accuracy_drop_ratio below the accuracy of all the type's predictions and
      has at least alert_segment_min_labeled labeled predictions (warn);
    - estimated performance: a binary model version's CBPE accuracy on one of the last two
      days below alert_estimated_accuracy_min, on days of at least
      alert_estimated_min_predictions scored predictions (warn), labels or not.
    A view, as fresh as the daily marts it reads.
#}
{{ config(materialized='view') }}

{%- set segment_drop_ratio = var('alert_segment_accuracy_drop_ratio') -%}
{%- set segment_min_labeled = var('alert_segment_min_labeled') | int -%}
{%- set estimated_accuracy_min = var('alert_estimated_accuracy_min') -%}
{%- set estimated_min_predictions = var('alert_estimated_min_predictions') | int -%}

with

feature_drift as (

    select * from {{ ref('mart_feature_drift_daily') }}
    where drift_date >= current_date - 1

),

segment_days as (

    select * from {{ ref('mart_segment_performance_daily') }}
    where metric_date > current_date - 7

),

estimated as (

    select * from {{ ref('mart_estimated_performance_daily') }}
    where metric_date >= current_date - 1

),

{# The two checks of each feature's day, one row each: PSI by the drift_status macro, the change
   of the missing share by missing_share_status; 'drift' is an error, 'warn' a warning. #}
feature_checks as (

    select
        feature_drift.drift_date,
        feature_drift.service_name,
        feature_drift.prediction_type,
        feature_drift.feature_name,
        checks.metric,
        checks.warn_threshold,
        checks.error_threshold,
        case checks.metric
            when 'feature_psi' then feature_drift.psi
            else feature_drift.missing_share_change
        end as observed_value,
        case checks.metric
            when 'feature_psi'
                then {{ drift_status('feature_drift.psi', 'feature_drift.current_count') }}
            else {{ missing_share_status(
                'feature_drift.missing_share_change', 'feature_drift.prediction_count'
            ) }}
        end as check_status
    from feature_drift
    cross join (
        values
        (
            'feature_psi',
            {{ var('alert_psi_warn') }}::double precision,
            {{ var('alert_psi_error') }}::double precision
        ),
        (
            'feature_missing_share_change',
            {{ var('alert_missing_share_change_warn') }}::double precision,
            {{ var('alert_missing_share_change_error') }}::double precision
        )
    ) as checks (metric, warn_threshold, error_threshold)

),

feature_alerts as (

    select
        'service' as entity_type,
        service_name as entity,
        metric,
        '{{ var("drift_reference_days") }} days reference' as alert_window,
        observed_value,
        case
            when check_status = 'drift' then error_threshold else warn_threshold
        end as threshold,
        case when check_status = 'drift' then 'error' else 'warn' end as severity,
        drift_date::timestamptz as since,
        drift_date as alert_date,
        'prediction type ' || prediction_type || ', feature ' || feature_name as detail,
        prediction_type,
        feature_name,
        null::text as segment_key,
        null::text as segment_value,
        null::bigint as labeled_count,
        null::text as model_version
    from feature_checks
    where check_status != 'ok'

),

segment_values as (

    select
        service_name,
        prediction_type,
        segment_key,
        segment_value,
        sum(scored_labeled_count) as scored_labeled_count,
        sum(correct_count) as correct_count,
        max(metric_date) as last_date
    from segment_days
    group by service_name, prediction_type, segment_key, segment_value

),

segment_keys as (

    select
        service_name,
        prediction_type,
        segment_key,
        {{ safe_divide('sum(correct_count)', 'sum(scored_labeled_count)') }} as key_accuracy
    from segment_values
    group by service_name, prediction_type, segment_key

),

segment_ranks as (

    select
        segment_values.*,
        segment_keys.key_accuracy,
        segment_values.correct_count::double precision
        / segment_values.scored_labeled_count as segment_accuracy,
        row_number() over (
            partition by
                segment_values.service_name, segment_values.prediction_type,
                segment_values.segment_key
            order by
                segment_values.correct_count::double precision
                / segment_values.scored_labeled_count,
                segment_values.segment_value
        ) as accuracy_rank
    from segment_values
    inner join segment_keys
        on
            segment_values.service_name = segment_keys.service_name
            and segment_values.prediction_type = segment_keys.prediction_type
            and segment_values.segment_key = segment_keys.segment_key
    where segment_values.scored_labeled_count >= {{ segment_min_labeled }}

),

worst_segments as (

    select
        'service' as entity_type,
        service_name as entity,
        'segment_accuracy' as metric,
        '7 days' as alert_window,
        segment_accuracy as observed_value,
        (1 - {{ segment_drop_ratio }}) * key_accuracy as threshold,
        'warn' as severity,
        last_date::timestamptz as since,
        last_date as alert_date,
        'prediction type ' || prediction_type || ', ' || segment_key || ' = ' || segment_value
        || ' (' || scored_labeled_count || ' labeled)' as detail,
        prediction_type,
        null::text as feature_name,
        segment_key,
        segment_value,
        scored_labeled_count as labeled_count,
        null::text as model_version
    from segment_ranks
    where
        accuracy_rank = 1
        and segment_accuracy < (1 - {{ segment_drop_ratio }}) * key_accuracy

),

estimated_accuracy as (

    select
        'service' as entity_type,
        service_name as entity,
        'estimated_accuracy' as metric,
        '1 day' as alert_window,
        estimated_accuracy as observed_value,
        {{ estimated_accuracy_min }}::double precision as threshold,
        'warn' as severity,
        metric_date::timestamptz as since,
        metric_date as alert_date,
        'prediction type ' || prediction_type || ', model version ' || model_version
        || ' (' || round(100 * coalesce(labeled_share, 0)) || '% labeled)' as detail,
        prediction_type,
        null::text as feature_name,
        null::text as segment_key,
        null::text as segment_value,
        labeled_count,
        model_version
    from estimated
    where
        scored_count >= {{ estimated_min_predictions }}
        and estimated_accuracy < {{ estimated_accuracy_min }}

),

final as (

    select * from feature_alerts
    union all
    select * from worst_segments
    union all
    select * from estimated_accuracy

)

select * from final
