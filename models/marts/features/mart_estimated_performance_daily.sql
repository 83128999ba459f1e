{#
    Performance of binary classifiers estimated from their predicted probabilities alone, per
    day, service, prediction type and model version, next to the realised value once labels
    have arrived (docs/requirements.md#estimated-performance): confidence-based performance
    estimation (CBPE, as published by NannyML).

    If the probabilities are calibrated (of the predictions given probability p, a share p is
    positive), prediction i is positive with probability p_i, so with predicted class
    c_i = p_i >= decision_threshold the confusion matrix has the expected cells
        TP = sum(p_i | c_i = 1), FP = sum(1 - p_i | c_i = 1),
        FN = sum(p_i | c_i = 0), TN = sum(1 - p_i | c_i = 0),
    and accuracy, precision, recall and F1 follow from them as from counted cells. The
    expected ROC AUC weighs each prediction as p_i of a positive and 1 - p_i of a negative:
        AUC = sum over pairs (i, j) of p_i (1 - p_j) [s_i > s_j, ties 1/2] / (sum p)(sum 1 - p),
    the trapezoid area under the ROC curve of those weights. docs/monitoring.md says when the
    assumption fails.

    Estimates cover every prediction of the day with a predicted_value, labeled or not; the
    realised metrics are mart_performance_daily's, over the labeled ones (labeled_share says how
    many). estimated_accuracy_stderr is the standard deviation of realised accuracy around the
    estimate if the probabilities are calibrated: sqrt(sum q_i (1 - q_i)) / n, q_i = p_i if c_i
    = 1 else 1 - p_i.

    Incremental by day (the daily_mart config), as mart_performance_daily.
#}
{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}

with

outcomes as (

    {{ daily_mart_outcomes(recompute_from) }}

),

realised as (

    select * from {{ ref('mart_performance_daily') }}
    {% if is_incremental() %}
        where metric_date >= {{ recompute_from }}
    {% endif %}

),

scored as (

    select
        created_date as metric_date,
        service_name,
        prediction_type,
        predicted_value as probability,
        predicted_class,
        last_ingested_at,
        coalesce(model_version, 'unversioned') as model_version
    from outcomes
    where prediction_kind = 'binary_classification' and predicted_value is not null

),

{# Each distinct probability once: its weight as a positive and as a negative. #}
score_groups as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        probability,
        sum(probability) as positive_weight,
        sum(1 - probability) as negative_weight
    from scored
    group by metric_date, service_name, prediction_type, model_version, probability

),

score_ranks as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        positive_weight,
        negative_weight,
        coalesce(sum(negative_weight) over (
            partition by metric_date, service_name, prediction_type, model_version
            order by probability
            rows between unbounded preceding and 1 preceding
        ), 0) as negative_weight_below
    from score_groups

),

expected_auc as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        {{ safe_divide(
            'sum(positive_weight * (negative_weight_below + 0.5 * negative_weight))',
            'sum(positive_weight) * sum(negative_weight)'
        ) }} as estimated_auc
    from score_ranks
    group by metric_date, service_name, prediction_type, model_version

),

expected_cells as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        count(*)::bigint as scored_count,
        coalesce(sum(probability) filter (where predicted_class = 1), 0)
            as expected_true_positive,
        coalesce(sum(1 - probability) filter (where predicted_class = 1), 0)
            as expected_false_positive,
        coalesce(sum(probability) filter (where predicted_class = 0), 0)
            as expected_false_negative,
        coalesce(sum(1 - probability) filter (where predicted_class = 0), 0)
            as expected_true_negative,
        sum(
            case
                when predicted_class = 1 then probability * (1 - probability)
                else (1 - probability) * probability
            end
        ) as accuracy_variance_sum,
        max(last_ingested_at) as last_ingested_at
    from scored
    group by metric_date, service_name, prediction_type, model_version

),

final as (

    select
        {{ surrogate_key([
            'expected_cells.metric_date', 'expected_cells.service_name',
            'expected_cells.prediction_type', 'expected_cells.model_version',
        ]) }} as estimated_performance_daily_id,
        expected_cells.metric_date,
        expected_cells.service_name,
        expected_cells.prediction_type,
        expected_cells.model_version,
        expected_cells.scored_count,
        coalesce(realised.labeled_count, 0)::bigint as labeled_count,
        {{ safe_divide('coalesce(realised.labeled_count, 0)', 'realised.prediction_count') }}
            as labeled_share,
        expected_cells.expected_true_positive,
        expected_cells.expected_false_positive,
        expected_cells.expected_false_negative,
        expected_cells.expected_true_negative,
        (expected_cells.expected_true_positive + expected_cells.expected_true_negative)
        / expected_cells.scored_count as estimated_accuracy,
        sqrt(expected_cells.accuracy_variance_sum) / expected_cells.scored_count
            as estimated_accuracy_stderr,
        {{ safe_divide(
            'expected_cells.expected_true_positive',
            'expected_cells.expected_true_positive + expected_cells.expected_false_positive'
        ) }} as estimated_precision,
        {{ safe_divide(
            'expected_cells.expected_true_positive',
            'expected_cells.expected_true_positive + expected_cells.expected_false_negative'
        ) }} as estimated_recall,
        {{ safe_divide(
            '2 * expected_cells.expected_true_positive',
            '2 * expected_cells.expected_true_positive'
            ~ ' + expected_cells.expected_false_positive'
            ~ ' + expected_cells.expected_false_negative'
        ) }} as estimated_f1,
        expected_auc.estimated_auc,
        realised.accuracy as realised_accuracy,
        realised.precision as realised_precision,
        realised.recall as realised_recall,
        realised.f1 as realised_f1,
        realised.auc as realised_auc,
        greatest(expected_cells.last_ingested_at, realised.last_ingested_at)
            as last_ingested_at
    from expected_cells
    inner join expected_auc
        on
            expected_cells.metric_date = expected_auc.metric_date
            and expected_cells.service_name = expected_auc.service_name
            and expected_cells.prediction_type = expected_auc.prediction_type
            and expected_cells.model_version = expected_auc.model_version
    left join realised
        on
            expected_cells.metric_date = realised.metric_date
            and expected_cells.service_name = realised.service_name
            and expected_cells.prediction_type = realised.prediction_type
            and expected_cells.model_version = realised.model_version

)

select * from final
