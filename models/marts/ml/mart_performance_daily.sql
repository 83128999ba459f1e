{#
    Online model performance per day (of the prediction), service, prediction type and model
    version. Counts cover every prediction; the metrics cover labeled predictions that have a
    predicted_value (payload-only predictions are counted in unscored_count and left out of
    every metric, on both sides of each formula), regression metrics for regression types and
    classification metrics for binary types (seeds/prediction_types.csv says which). A day's
    metrics settle once its labels are in: see mart_label_coverage_daily.

    Where scikit-learn defines the metric, the formula is its current one, except where the
    column's description says otherwise (docs/requirements.md#performance-metrics).

    Incremental by day (the daily_mart config in _ml__models.yml): see daily_mart_outcomes.
#}
{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}
{#- float64 machine epsilon: scikit-learn's log_loss clips to [eps, 1 - eps] -#}
{%- set float_epsilon = '2.220446049250313e-16::double precision' -%}

with

outcomes as (

    {{ daily_mart_outcomes(recompute_from) }}

),

calibration as (

    select * from {{ ref('mart_calibration_daily') }}
    {% if is_incremental() %}
        where metric_date >= {{ recompute_from }}
    {% endif %}

),

base as (

    select
        created_date as metric_date,
        service_name,
        prediction_type,
        prediction_kind,
        predicted_value,
        actual_value,
        error,
        abs_error,
        squared_error,
        predicted_class,
        confidence,
        is_correct,
        label_status,
        label_status = 'labeled' and predicted_value is null as is_unscored_label,
        least(greatest(predicted_value, {{ float_epsilon }}), 1 - {{ float_epsilon }})
            as clipped_probability,
        coalesce(model_version, 'unversioned') as model_version,
        label_status = 'labeled'
        and predicted_value is not null
        and prediction_kind = 'regression' as is_regression_label,
        label_status = 'labeled'
        and predicted_value is not null
        and prediction_kind = 'binary_classification' as is_binary_label,
        last_ingested_at
    from outcomes

),

ranked as (

    {# Mann-Whitney: average rank for ties = rank() + (size of the tie group - 1) / 2. #}
    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        actual_value,
        rank() over by_value + (count(*) over ties - 1) / 2.0 as average_rank
    from base
    where is_binary_label
    window
        by_value as (
            partition by metric_date, service_name, prediction_type, model_version
            order by predicted_value
        ),
        ties as (
            partition by metric_date, service_name, prediction_type, model_version, predicted_value
        )

),

auc as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        count(*) filter (where actual_value = 1) as positive_count,
        count(*) filter (where actual_value = 0) as negative_count,
        sum(average_rank) filter (where actual_value = 1) as positive_rank_sum
    from ranked
    group by metric_date, service_name, prediction_type, model_version

),

calibration_summary as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        sum(prediction_count * gap) filter (where calibration_kind = 'probability')
        / sum(prediction_count) filter (where calibration_kind = 'probability') as ece,
        max(gap) filter (where calibration_kind = 'probability' and has_min_count) as mce,
        sum(prediction_count * gap) filter (where calibration_kind = 'confidence')
        / sum(prediction_count) filter (where calibration_kind = 'confidence') as confidence_ece,
        max(gap) filter (where calibration_kind = 'confidence' and has_min_count)
            as confidence_mce
    from calibration
    group by metric_date, service_name, prediction_type, model_version

),

aggregated as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        max(prediction_kind) as prediction_kind,
        count(*)::bigint as prediction_count,
        count(*) filter (where label_status = 'labeled')::bigint as labeled_count,
        count(*) filter (where label_status = 'pending')::bigint as pending_count,
        count(*) filter (where label_status = 'expired')::bigint as expired_count,
        count(*) filter (where is_unscored_label)::bigint as unscored_count,
        count(*) filter (
            where label_status = 'labeled' and predicted_value is not null and confidence is null
        )::bigint as confidence_missing_count,
        max(last_ingested_at) as last_ingested_at,
        {# accuracy, MAE, RMSE and the confusion counts, as the segments' #}
        {{ label_metric_aggregates('is_regression_label', 'is_binary_label', 'is_binary_label') }},
        {# regression #}
        avg(error) filter (where is_regression_label) as bias,
        {# the floor only keeps |error| / |actual| finite for subnormal actuals #}
        avg(abs_error / greatest(abs(actual_value), {{ float_epsilon }}))
        filter (where is_regression_label and actual_value <> 0) as mape,
        count(*) filter (where is_regression_label and actual_value = 0)::bigint
            as mape_excluded_count,
        sum(squared_error) filter (where is_regression_label) as ss_residual,
        var_pop(actual_value) filter (where is_regression_label)
        * count(*) filter (where is_regression_label) as ss_total,
        min(actual_value) filter (where is_regression_label)
        = max(actual_value) filter (where is_regression_label) as is_actual_constant,
        percentile_cont(0.5) within group (order by abs_error)
        filter (where is_regression_label) as p50_abs_error,
        percentile_cont(0.9) within group (order by abs_error)
        filter (where is_regression_label) as p90_abs_error,
        stddev_samp(error) filter (where is_regression_label) as error_stddev,
        min(error) filter (where is_regression_label) as min_error,
        max(error) filter (where is_regression_label) as max_error,
        {# binary classification #}
        -avg(
            actual_value * ln(clipped_probability)
            + (1 - actual_value) * ln(1 - clipped_probability)
        ) filter (where is_binary_label) as log_loss,
        avg(squared_error) filter (where is_binary_label) as brier
    from base
    group by metric_date, service_name, prediction_type, model_version

),

final as (

    select
        {{ surrogate_key([
            'aggregated.metric_date', 'aggregated.service_name',
            'aggregated.prediction_type', 'aggregated.model_version'
        ]) }} as performance_daily_id,
        aggregated.metric_date,
        aggregated.service_name,
        aggregated.prediction_type,
        aggregated.model_version,
        aggregated.prediction_kind,
        aggregated.prediction_count,
        aggregated.labeled_count,
        aggregated.pending_count,
        aggregated.expired_count,
        aggregated.unscored_count,
        aggregated.mae,
        aggregated.rmse,
        aggregated.bias,
        aggregated.mape,
        aggregated.mape_excluded_count,
        {# ss_residual / ss_total could overflow float8 (an error in PostgreSQL) when the
           actuals differ by a subnormal amount: beyond e^700 the ratio is -infinity #}
        case
            when aggregated.is_actual_constant or not aggregated.ss_total > 0 then null
            when aggregated.ss_residual = 0 then 1
            when ln(aggregated.ss_residual) - ln(aggregated.ss_total) > 700
                then '-infinity'::double precision
            else 1 - aggregated.ss_residual / aggregated.ss_total
        end as r2,
        aggregated.p50_abs_error,
        aggregated.p90_abs_error,
        aggregated.error_stddev,
        aggregated.min_error,
        aggregated.max_error,
        aggregated.accuracy,
        {{ label_metric_ratios('aggregated', 'auc') }},
        aggregated.log_loss,
        aggregated.brier,
        calibration_summary.ece,
        calibration_summary.mce,
        calibration_summary.confidence_ece,
        calibration_summary.confidence_mce,
        aggregated.confidence_missing_count,
        aggregated.last_ingested_at
    from aggregated
    left join auc
        on
            aggregated.metric_date = auc.metric_date
            and aggregated.service_name = auc.service_name
            and aggregated.prediction_type = auc.prediction_type
            and aggregated.model_version = auc.model_version
    left join calibration_summary
        on
            aggregated.metric_date = calibration_summary.metric_date
            and aggregated.service_name = calibration_summary.service_name
            and aggregated.prediction_type = calibration_summary.prediction_type
            and aggregated.model_version = calibration_summary.model_version

)

select * from final
