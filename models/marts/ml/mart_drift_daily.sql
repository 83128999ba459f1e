{#
    Distribution drift of predicted_value and confidence per day, service and prediction type,
    against the reference window of the drift_reference_days (28) days before that day.

    - PSI: bins are the reference window's deciles (percentile_cont 0.1 .. 0.9, duplicates
      removed, both ends open: bin = width_bucket(value, edges), 0 .. number of edges);
      shares floored at 1e-4; natural log.
    - Jensen-Shannon distance: same bins, raw (unfloored) shares, base 2, sqrt of the
      divergence (what scipy.spatial.distance.jensenshannon(p, q, base=2) returns).
    - KS: two-sample Kolmogorov-Smirnov statistic on the raw values, max |F_ref - F_day|
      (scipy.stats.ks_2samp(...).statistic).
    All three are null when the reference window has fewer than drift_min_reference_rows (100)
    values.

    The CTEs below hold ~29 rows per prediction and PostgreSQL estimates them at a few rows,
    so it would join them by nested loops (minutes on 20k predictions); the pre_hook turns
    nested loops off for this model's transaction only.

    Incremental: a day's drift depends only on predictions created up to that day, so a run
    recomputes the newest day already loaded (it may have been partial) and every later one.
#}
{{
    config(
        materialized='incremental',
        unique_key='drift_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        contract={'enforced': true},
        pre_hook="set local enable_nestloop = off",
    )
}}

{%- set reference_days = var('drift_reference_days', 28) | int -%}
{%- set min_reference = var('drift_min_reference_rows', 100) | int -%}

with

{% if is_incremental() %}
    previous_run as (

        select coalesce(max(drift_date), date '1900-01-01') as last_drift_date
        from {{ this }}

    ),
{% endif %}

outcomes as (

    select
        created_date,
        service_name,
        prediction_type,
        predicted_value,
        confidence
    from {{ ref('fct_prediction_outcomes') }}
    {% if is_incremental() %}
        where
            created_at >= (
                (select previous_run.last_drift_date from previous_run) - {{ reference_days }}
            )::timestamp at time zone 'UTC'
    {% endif %}

),

feature_values as (

    select
        created_date,
        service_name,
        prediction_type,
        'predicted_value' as feature_name,
        predicted_value as feature_value
    from outcomes
    where predicted_value is not null

    union all

    select
        created_date,
        service_name,
        prediction_type,
        'confidence' as feature_name,
        confidence as feature_value
    from outcomes
    where confidence is not null

),

drift_days as (

    select distinct
        created_date as drift_date,
        service_name,
        prediction_type,
        feature_name
    from feature_values
    {% if is_incremental() %}
        where created_date >= (select previous_run.last_drift_date from previous_run)
    {% endif %}

),

windowed as (

    select
        drift_days.drift_date,
        drift_days.service_name,
        drift_days.prediction_type,
        drift_days.feature_name,
        feature_values.feature_value,
        feature_values.created_date < drift_days.drift_date as is_reference
    from drift_days
    inner join feature_values
        on
            drift_days.service_name = feature_values.service_name
            and drift_days.prediction_type = feature_values.prediction_type
            and drift_days.feature_name = feature_values.feature_name
            and feature_values.created_date >= drift_days.drift_date - {{ reference_days }}
            and drift_days.drift_date >= feature_values.created_date

),

samples as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        count(*) filter (where is_reference) as reference_count,
        count(*) filter (where not is_reference) as current_count,
        percentile_cont(array[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
        within group (order by feature_value)
        filter (where is_reference) as reference_deciles
    from windowed
    group by drift_date, service_name, prediction_type, feature_name

),

edges as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        reference_count,
        current_count,
        (
            select array_agg(distinct decile order by decile)
            from unnest(samples.reference_deciles) as decile
        ) as bin_edges
    from samples
    where reference_count > 0

),

bin_counts as (

    select
        windowed.drift_date,
        windowed.service_name,
        windowed.prediction_type,
        windowed.feature_name,
        width_bucket(windowed.feature_value, edges.bin_edges) as bin_number,
        count(*) filter (where windowed.is_reference) as reference_n,
        count(*) filter (where not windowed.is_reference) as current_n
    from windowed
    inner join edges
        on
            windowed.drift_date = edges.drift_date
            and windowed.service_name = edges.service_name
            and windowed.prediction_type = edges.prediction_type
            and windowed.feature_name = edges.feature_name
    group by
        windowed.drift_date,
        windowed.service_name,
        windowed.prediction_type,
        windowed.feature_name,
        width_bucket(windowed.feature_value, edges.bin_edges)

),

all_bins as (

    select
        edges.*,
        bin_series.bin_number
    from edges
    cross join
        lateral
        generate_series(0, cardinality(edges.bin_edges)) as bin_series (bin_number)

),

shares as (

    select
        all_bins.drift_date,
        all_bins.service_name,
        all_bins.prediction_type,
        all_bins.feature_name,
        coalesce(bin_counts.reference_n, 0)::double precision
        / all_bins.reference_count as reference_share,
        coalesce(bin_counts.current_n, 0)::double precision
        / all_bins.current_count as current_share
    from all_bins
    left join bin_counts
        on
            all_bins.drift_date = bin_counts.drift_date
            and all_bins.service_name = bin_counts.service_name
            and all_bins.prediction_type = bin_counts.prediction_type
            and all_bins.feature_name = bin_counts.feature_name
            and all_bins.bin_number = bin_counts.bin_number

),

divergences as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        count(*) as bin_count,
        sum(
            (greatest(current_share, 1e-4) - greatest(reference_share, 1e-4))
            * ln(greatest(current_share, 1e-4) / greatest(reference_share, 1e-4))
        ) as psi,
        0.5 * sum(
            case
                when reference_share > 0
                    then reference_share
                        * ln(reference_share / ((reference_share + current_share) / 2))
                else 0
            end
        )
        + 0.5 * sum(
            case
                when current_share > 0
                    then current_share
                        * ln(current_share / ((reference_share + current_share) / 2))
                else 0
            end
        ) as js_divergence_nats
    from shares
    group by drift_date, service_name, prediction_type, feature_name

),

ecdf_gaps as (

    {# Default RANGE frame: the running counts include every tie of the current value. #}
    select
        windowed.drift_date,
        windowed.service_name,
        windowed.prediction_type,
        windowed.feature_name,
        abs(
            (count(*) filter (where windowed.is_reference) over by_value)::double precision
            / samples.reference_count
            - (count(*) filter (where not windowed.is_reference) over by_value)::double precision
            / samples.current_count
        ) as ecdf_gap
    from windowed
    inner join samples
        on
            windowed.drift_date = samples.drift_date
            and windowed.service_name = samples.service_name
            and windowed.prediction_type = samples.prediction_type
            and windowed.feature_name = samples.feature_name
    where samples.reference_count > 0
    window by_value as (
        partition by
            windowed.drift_date,
            windowed.service_name,
            windowed.prediction_type,
            windowed.feature_name
        order by windowed.feature_value
    )

),

ks as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        max(ecdf_gap) as ks_statistic
    from ecdf_gaps
    group by drift_date, service_name, prediction_type, feature_name

),

final as (

    select
        {{ surrogate_key([
            'samples.drift_date', 'samples.service_name',
            'samples.prediction_type', 'samples.feature_name'
        ]) }} as drift_daily_id,
        samples.drift_date,
        samples.service_name,
        samples.prediction_type,
        samples.feature_name,
        samples.reference_count::bigint as reference_count,
        samples.current_count::bigint as current_count,
        divergences.bin_count::integer as bin_count,
        case when samples.reference_count >= {{ min_reference }} then divergences.psi end as psi,
        case
            when samples.reference_count >= {{ min_reference }}
                then sqrt(greatest(divergences.js_divergence_nats / ln(2), 0))
        end as js_distance,
        case when samples.reference_count >= {{ min_reference }} then ks.ks_statistic end
            as ks_statistic
    from samples
    left join divergences
        on
            samples.drift_date = divergences.drift_date
            and samples.service_name = divergences.service_name
            and samples.prediction_type = divergences.prediction_type
            and samples.feature_name = divergences.feature_name
    left join ks
        on
            samples.drift_date = ks.drift_date
            and samples.service_name = ks.service_name
            and samples.prediction_type = ks.prediction_type
            and samples.feature_name = ks.feature_name

)

select * from final
