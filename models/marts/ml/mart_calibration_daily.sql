{#
    Reliability diagrams per day, service, prediction type and model version, two kinds
    (docs/requirements.md#calibration):
    - `probability` (binary types): the predicted probability (predicted_value) against the
      observed positive rate (mean label), as scikit-learn's calibration_curve with
      strategy='uniform';
    - `confidence` (every type with a correctness rule): the service-supplied confidence
      against the share of correct predictions. A different quantity: how far the service's
      own confidence can be trusted.
    Labeled predictions with a score fall in calibration_bins equal-width bins over [0, 1],
    closed on the right as in calibration_curve (bin 1 is [0, 1/n], bin b is
    ((b-1)/n, b/n]; edges are i * (1/n), numpy.linspace's values). `gap` is |observed rate -
    mean score|; mart_performance_daily turns the bins into ECE (count-weighted mean gap, all
    bins) and MCE (largest gap among bins of at least calibration_min_bin_count predictions).
    Predictions without the score are not binned: mart_performance_daily counts them.

    Incremental by day (the daily_mart config in _ml__models.yml): see daily_mart_outcomes.
#}
{%- set recompute_from = daily_mart_recompute_from() if is_incremental() -%}
{%- set bin_total = var('calibration_bins', 10) | int -%}
{%- set min_bin_count = var('calibration_min_bin_count', 10) | int -%}

with

outcomes as (

    {{ daily_mart_outcomes(recompute_from) }}

),

scored as (

    select
        created_date as metric_date,
        service_name,
        prediction_type,
        coalesce(model_version, 'unversioned') as model_version,
        'probability' as calibration_kind,
        predicted_value as score,
        actual_value as observed_value,
        last_ingested_at
    from outcomes
    where
        label_status = 'labeled'
        and prediction_kind = 'binary_classification'
        and predicted_value is not null

    union all

    select
        created_date as metric_date,
        service_name,
        prediction_type,
        coalesce(model_version, 'unversioned') as model_version,
        'confidence' as calibration_kind,
        confidence as score,
        is_correct::integer::double precision as observed_value,
        last_ingested_at
    from outcomes
    where
        label_status = 'labeled'
        and confidence is not null
        and is_correct is not null

),

bins as (

    select
        metric_date,
        service_name,
        prediction_type,
        model_version,
        calibration_kind,
        {{ calibration_bin('score', bin_total) }} as bin_number,
        count(*)::bigint as prediction_count,
        avg(score) as mean_score,
        avg(observed_value) as observed_rate,
        max(last_ingested_at) as last_ingested_at
    from scored
    group by
        metric_date,
        service_name,
        prediction_type,
        model_version,
        calibration_kind,
        {{ calibration_bin('score', bin_total) }}

),

final as (

    select
        {{ surrogate_key([
            'metric_date', 'service_name', 'prediction_type', 'model_version',
            'calibration_kind', 'bin_number'
        ]) }} as calibration_bin_id,
        metric_date,
        service_name,
        prediction_type,
        model_version,
        calibration_kind,
        bin_number,
        (bin_number - 1) * (1.0 / {{ bin_total }})::double precision as bin_lower,
        bin_number * (1.0 / {{ bin_total }})::double precision as bin_upper,
        prediction_count,
        prediction_count >= {{ min_bin_count }} as has_min_count,
        mean_score,
        observed_rate,
        abs(observed_rate - mean_score) as gap,
        last_ingested_at
    from bins

)

select * from final
