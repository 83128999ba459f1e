{#
    Performance per day, service, prediction type, declared segment key
    (seeds/prediction_features.csv, role `segment`) and segment value, model versions pooled
    (docs/requirements.md#segment-performance): which segment the model fails on.

    A segment value is the context key's JSON string, number or boolean as text, else
    '(missing)'. Each day keeps the segment_max_values (10) values with the most predictions of
    that day (ties by value) and folds the rest into one '(other)' bucket, so a key with
    thousands of values (user ids) stays a few rows; every prediction lands in exactly one
    bucket per key, so a key's buckets add up to the type's day.

    The metrics are mart_performance_daily's, on the bucket's labeled predictions that have a
    predicted_value: accuracy (share correct: the tolerance for regression, the class for
    binary types), MAE and RMSE (regression), precision, recall, F1 and AUC (binary).

    Incremental by day (the daily_mart config in _features__models.yml), as the daily marts
    over fct_prediction_outcomes: see daily_mart_outcomes.
#}
{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}
{%- set max_values = var('segment_max_values', 10) | int -%}
{%- if max_values < 1 -%}
    {{ exceptions.raise_compiler_error(
        "segment_max_values must be 1 or more, got " ~ max_values
    ) }}
{%- endif -%}

with

outcomes as (

    {{ daily_mart_outcomes(recompute_from) }}

),

predictions as (

    select
        prediction_id,
        context
    from {{ ref('stg_ml_raw__predictions') }}
    {% if is_incremental() %}
        where created_at >= {{ recompute_from }}::timestamp at time zone 'UTC'
    {% endif %}

),

segment_keys as (

    select
        prediction_type,
        context_key as segment_key
    from {{ ref('prediction_features') }}
    where role = 'segment'

),

segmented as (

    select
        outcomes.created_date as metric_date,
        outcomes.service_name,
        outcomes.prediction_type,
        outcomes.prediction_kind,
        segment_keys.segment_key,
        outcomes.predicted_value,
        outcomes.actual_value,
        outcomes.abs_error,
        outcomes.squared_error,
        outcomes.predicted_class,
        outcomes.is_correct,
        outcomes.label_status,
        outcomes.last_ingested_at,
        coalesce(
            case
                when
                    jsonb_typeof(predictions.context -> segment_keys.segment_key)
                    in ('string', 'number', 'boolean')
                    then predictions.context ->> segment_keys.segment_key
            end,
            '(missing)'
        ) as raw_segment_value,
        outcomes.label_status = 'labeled'
        and outcomes.predicted_value is not null as is_scored_label
    from outcomes
    inner join predictions on outcomes.prediction_id = predictions.prediction_id
    inner join segment_keys on outcomes.prediction_type = segment_keys.prediction_type

),

{# A key's values of a day ranked on their counts: a small aggregate, hashed and joined back,
   where windows over every row would sort them twice more. #}
value_ranks as (

    select
        metric_date,
        service_name,
        prediction_type,
        segment_key,
        raw_segment_value,
        row_number() over (
            partition by metric_date, service_name, prediction_type, segment_key
            order by count(*) desc, raw_segment_value asc
        ) as value_rank
    from segmented
    group by metric_date, service_name, prediction_type, segment_key, raw_segment_value

),

bucketed as (

    select
        segmented.*,
        value_ranks.value_rank > {{ max_values }} as is_other,
        case
            when value_ranks.value_rank > {{ max_values }} then '(other)'
            else segmented.raw_segment_value
        end as segment_value,
        segmented.is_scored_label
        and segmented.prediction_kind = 'regression' as is_regression_label,
        segmented.is_scored_label
        and segmented.prediction_kind = 'binary_classification' as is_binary_label
    from segmented
    inner join value_ranks
        on
            segmented.metric_date = value_ranks.metric_date
            and segmented.service_name = value_ranks.service_name
            and segmented.prediction_type = value_ranks.prediction_type
            and segmented.segment_key = value_ranks.segment_key
            and segmented.raw_segment_value = value_ranks.raw_segment_value

),

{# Mann-Whitney, as mart_performance_daily: average rank for ties, among the bucket's binary
   labels (is_binary_label partitions them apart from the other rows). #}
ranked as (

    select
        *,
        case
            when is_binary_label
                then rank() over by_value + (count(*) over ties - 1) / 2.0
        end as average_rank
    from bucketed
    window
        by_value as (
            partition by
                metric_date, service_name, prediction_type, segment_key, segment_value,
                is_binary_label
            order by predicted_value
        ),
        ties as (
            partition by
                metric_date, service_name, prediction_type, segment_key, segment_value,
                is_binary_label, predicted_value
        )

),

aggregated as (

    select
        metric_date,
        service_name,
        prediction_type,
        segment_key,
        segment_value,
        max(prediction_kind) as prediction_kind,
        bool_or(is_other) as is_other,
        count(distinct raw_segment_value)::integer as raw_value_count,
        count(*)::bigint as prediction_count,
        count(*) filter (where label_status = 'labeled')::bigint as labeled_count,
        count(*) filter (where is_scored_label)::bigint as scored_labeled_count,
        count(*) filter (where is_scored_label and is_correct)::bigint as correct_count,
        {# as mart_performance_daily, but accuracy over every scored label #}
        {{ label_metric_aggregates('is_regression_label', 'is_binary_label', 'is_scored_label') }},
        count(*) filter (where is_binary_label and actual_value = 1) as positive_count,
        count(*) filter (where is_binary_label and actual_value = 0) as negative_count,
        sum(average_rank) filter (where is_binary_label and actual_value = 1)
            as positive_rank_sum,
        max(last_ingested_at) as last_ingested_at
    from ranked
    group by metric_date, service_name, prediction_type, segment_key, segment_value

),

final as (

    select
        {{ surrogate_key([
            'aggregated.metric_date', 'aggregated.service_name', 'aggregated.prediction_type',
            'aggregated.segment_key', 'aggregated.segment_value',
        ]) }} as segment_performance_daily_id,
        aggregated.metric_date,
        aggregated.service_name,
        aggregated.prediction_type,
        aggregated.segment_key,
        aggregated.segment_value,
        aggregated.is_other,
        aggregated.raw_value_count,
        aggregated.prediction_kind,
        aggregated.prediction_count,
        aggregated.labeled_count,
        aggregated.scored_labeled_count,
        aggregated.correct_count,
        aggregated.accuracy,
        aggregated.mae,
        aggregated.rmse,
        {{ label_metric_ratios('aggregated', 'aggregated') }},
        aggregated.last_ingested_at
    from aggregated

)

select * from final
