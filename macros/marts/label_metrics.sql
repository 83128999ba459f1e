{#
    The performance formulas of mart_performance_daily (per model version) and
    mart_segment_performance_daily (per segment value), written once
    (docs/requirements.md#performance-metrics, docs/requirements.md#segment-performance).

    label_metric_aggregates: aggregate items over one row per prediction (columns abs_error,
    squared_error, is_correct, predicted_class, actual_value): accuracy (share of
    accuracy_rows that are correct), MAE and RMSE over regression_rows, and the confusion
    counts over binary_rows.
    Parameters: regression_rows, binary_rows, accuracy_rows (boolean SQL expressions of a row).
    Returns the select-list items `accuracy`, `mae`, `rmse`, `true_positive_count`,
    `false_positive_count` and `false_negative_count`.
    Example: select {{ label_metric_aggregates('is_regression_label', 'is_binary_label',
        'is_binary_label') }} from base group by ...
#}
{% macro label_metric_aggregates(regression_rows, binary_rows, accuracy_rows) %}
    avg(is_correct::integer::double precision) filter (where {{ accuracy_rows }}) as accuracy,
    avg(abs_error) filter (where {{ regression_rows }}) as mae,
    sqrt(avg(squared_error) filter (where {{ regression_rows }})) as rmse,
    {%- for name, predicted, actual in [
        ('true_positive', 1, 1), ('false_positive', 1, 0), ('false_negative', 0, 1)
    ] %}
        count(*) filter (
            where {{ binary_rows }} and predicted_class = {{ predicted }}
            and actual_value = {{ actual }}
        ) as {{ name }}_count {{- "," if not loop.last }}
    {%- endfor %}
{% endmacro %}

{#
    label_metric_ratios: precision, recall and F1 from the confusion counts of
    label_metric_aggregates, and AUC as Mann-Whitney U / (positives x negatives) from the
    positives' rank sum (ties at their average rank). Each is null where its denominator is
    zero (no binary label), so a regression row has none.
    Parameters: counts (the relation with true/false positive/negative counts and
    prediction_kind), ranks (the relation with positive_rank_sum, positive_count and
    negative_count).
    Returns the select-list items `precision`, `recall`, `f1` and `auc`.
    Example: select {{ label_metric_ratios('aggregated', 'auc') }} from aggregated left join auc
#}
{% macro label_metric_ratios(counts, ranks) %}
    {%- set true_positive = counts ~ '.true_positive_count' -%}
    {%- set false_positive = counts ~ '.false_positive_count' -%}
    {%- set false_negative = counts ~ '.false_negative_count' -%}
    {{ safe_divide(true_positive, true_positive ~ ' + ' ~ false_positive) }} as precision,
    {{ safe_divide(true_positive, true_positive ~ ' + ' ~ false_negative) }} as recall,
    case when {{ counts }}.prediction_kind = 'binary_classification' then
        {{ safe_divide(
            '2 * ' ~ true_positive,
            '2 * ' ~ true_positive ~ ' + ' ~ false_positive ~ ' + ' ~ false_negative
        ) }}
    end as f1,
    {{ safe_divide(
        ranks ~ '.positive_rank_sum - ' ~ ranks ~ '.positive_count * ('
        ~ ranks ~ '.positive_count + 1) / 2.0',
        ranks ~ '.positive_count * ' ~ ranks ~ '.negative_count'
    ) }} as auc
{%- endmacro %}
