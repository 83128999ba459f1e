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

    How: each value takes part in 29 comparisons (its own day and the 28 after it), so joining
    values to days costs 29 rows per value (580M rows, tens of GB of temporary files, at 10M
    predictions). Instead int_feature_values_collected keeps each day's values once, as a sorted
    array, and each (day, service, type, feature) is measured on its own (lateral subqueries):
    - the reference window's values are the 28 days' arrays (index lookups), sorted into
      `ascending_values` and `negated_values` (-v ascending); the deciles are read off the
      sorted array with percentile_cont's own interpolation;
    - counts come from binary searches, width_bucket(x, sorted array) = #{v <= x}:
      #{v >= e} = width_bucket(-e, negated_values), so a bin [e_b, e_b+1) holds
      #{v >= e_b} - #{v >= e_b+1} reference values;
    - KS: both ECDFs are step functions and F_day only steps at the day's values c, so the
      largest gap over all values is at some c or just below it:
      max over c of |F_ref(c) - F_day(c)| and |F_ref(c-) - F_day(c-)|.
    The counts are exact and the arithmetic is that of a row-per-value computation; the
    metrics match numpy/scipy to 1e-9 relative (pytests/test_marts.py).
    At 1M predictions this took a full refresh from over 10 minutes (and 11 GB of temporary
    files, stopped there) to about 35 seconds (bench/marts.py).

    Memoize would cache each lateral's arrays (and hash them as cache keys) for no hit: every
    (day, service, type, feature) is looked up once. The pre_hook turns it off for this
    model's transaction only.

    Incremental: a day's drift depends only on predictions created up to that day, so a run
    recomputes every day from the oldest one whose collected values changed since this mart's
    last_ingested_at (a partial newest day, or a day replayed after an outage) onwards.
#}
{{
    config(
        materialized='incremental',
        unique_key='drift_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        contract={'enforced': true},
        pre_hook="set local enable_memoize = off",
    )
}}

{%- set reference_days = var('drift_reference_days', 28) | int -%}
{%- set min_reference = var('drift_min_reference_rows', 100) | int -%}

with

{# Two imports of one model, each used once, so PostgreSQL inlines them and the lateral
   lookup of reference days goes through the model's index. #}
current_days as (

    select * from {{ ref('int_feature_values_collected') }}
    {% if is_incremental() %}
        where created_date >= {{ recompute_from_date(
            ref('int_feature_values_collected'), 'created_date', 'last_ingested_at'
        ) }}
    {% endif %}

),

reference_days as (

    select * from {{ ref('int_feature_values_collected') }}

),

reference_windows as (

    select
        current_days.created_date as drift_date,
        current_days.service_name,
        current_days.prediction_type,
        current_days.feature_name,
        current_days.value_count as current_count,
        current_days.sorted_values as current_values,
        reference.reference_count,
        reference.ascending_values,
        reference.negated_values,
        reference_edges.bin_edges,
        greatest(current_days.last_ingested_at, reference.last_ingested_at) as last_ingested_at
    from current_days
    cross join
        lateral (  -- noqa: ST05
        {# array_sort sorts the collected array in memory, cheaper than a sort node's tuples;
           unnest in the select list streams (in FROM it would fill a tuplestore first) #}
            select
                count(*) as reference_count,
                max(window_values.last_ingested_at) as last_ingested_at,
                array_sort(array_agg(window_values.feature_value)) as ascending_values,
                array_sort(array_agg(-window_values.feature_value)) as negated_values
            from (
                select
                    reference_days.last_ingested_at,
                    unnest(reference_days.sorted_values) as feature_value
                from reference_days
                where
                    reference_days.service_name = current_days.service_name
                    and reference_days.prediction_type = current_days.prediction_type
                    and reference_days.feature_name = current_days.feature_name
                    and reference_days.created_date
                    >= current_days.created_date - {{ reference_days }}
                    and reference_days.created_date < current_days.created_date
            ) as window_values
        ) as reference
    cross join
        lateral (  -- noqa: ST05
            {# percentile_cont's own arithmetic (float8_lerp) on the sorted array #}
            select array_agg(distinct deciles.decile order by deciles.decile) as bin_edges
            from (
                select
                    reference.ascending_values[floor(ranks.rank_position)::integer + 1]
                    + (ranks.rank_position - floor(ranks.rank_position))
                    * (
                        reference.ascending_values[ceil(ranks.rank_position)::integer + 1]
                        - reference.ascending_values[floor(ranks.rank_position)::integer + 1]
                    ) as decile
                from
                    unnest(array[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]::double precision[])
                        as quantiles (quantile)
                cross join
                    lateral (
                        select quantiles.quantile * (reference.reference_count - 1) as rank_position
                    ) as ranks
                where reference.reference_count > 0
            ) as deciles
        ) as reference_edges

),

measured as (

    {# Bin b holds [e_b, e_b+1): #{v >= e_b} - #{v >= e_b+1} reference values, where the
       missing e_0 counts every value and the missing e_k+1 none. #}
    select
        day_window.drift_date,
        day_window.service_name,
        day_window.prediction_type,
        day_window.feature_name,
        day_window.reference_count,
        day_window.current_count,
        day_window.last_ingested_at,
        divergences.bin_count,
        divergences.psi,
        divergences.js_divergence_nats,
        ks.ks_statistic
    from reference_windows as day_window
    cross join
        lateral (  -- noqa: ST05
            select
                count(*) as bin_count,
                sum(
                    (
                        greatest(bin_shares.current_share, 1e-4)
                        - greatest(bin_shares.reference_share, 1e-4)
                    )
                    * ln(
                        greatest(bin_shares.current_share, 1e-4)
                        / greatest(bin_shares.reference_share, 1e-4)
                    )
                ) as psi,
                0.5 * sum(
                    case
                        when bin_shares.reference_share > 0
                            then bin_shares.reference_share * ln(
                                    bin_shares.reference_share
                                    / ((bin_shares.reference_share + bin_shares.current_share) / 2)
                                )
                        else 0
                    end
                )
                + 0.5 * sum(
                    case
                        when bin_shares.current_share > 0
                            then bin_shares.current_share * ln(
                                    bin_shares.current_share
                                    / ((bin_shares.reference_share + bin_shares.current_share) / 2)
                                )
                        else 0
                    end
                ) as js_divergence_nats
            from (
                select
                    (
                        coalesce(
                            width_bucket(
                                -day_window.bin_edges[bins.bin_number], day_window.negated_values
                            ),
                            day_window.reference_count
                        )
                        - coalesce(
                            width_bucket(
                                -day_window.bin_edges[bins.bin_number + 1],
                                day_window.negated_values
                            ),
                            0
                        )
                    )::double precision / day_window.reference_count as reference_share,
                    coalesce(current_bins.value_count, 0)::double precision
                    / day_window.current_count as current_share
                from generate_series(0, cardinality(day_window.bin_edges)) as bins (bin_number)
                left join (
                    select
                        width_bucket(day_values.feature_value, day_window.bin_edges) as bin_number,
                        count(*) as value_count
                    from unnest(day_window.current_values) as day_values (feature_value)
                    group by width_bucket(day_values.feature_value, day_window.bin_edges)
                ) as current_bins
                    on bins.bin_number = current_bins.bin_number
                where day_window.reference_count > 0
            ) as bin_shares
        ) as divergences
    cross join
        lateral (  -- noqa: ST05
            select
                max(
                    greatest(
                        abs(
                            width_bucket(
                                day_steps.feature_value, day_window.ascending_values
                            )::double precision
                            / day_window.reference_count
                            - day_steps.at_or_below_count::double precision
                            / day_window.current_count
                        ),
                        abs(
                            (
                                day_window.reference_count
                                - width_bucket(
                                    -day_steps.feature_value, day_window.negated_values
                                )
                            )::double precision
                            / day_window.reference_count
                            - day_steps.below_count::double precision / day_window.current_count
                        )
                    )
                ) as ks_statistic
            from (
                select
                    day_values.feature_value,
                    min(day_values.value_position) - 1 as below_count,
                    max(day_values.value_position) as at_or_below_count
                from
                    unnest(day_window.current_values)
                    with ordinality as day_values (feature_value, value_position)
                where day_window.reference_count > 0
                group by day_values.feature_value
            ) as day_steps
        ) as ks

),

final as (

    select
        {{ surrogate_key(['drift_date', 'service_name', 'prediction_type', 'feature_name']) }}
            as drift_daily_id,
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        reference_count::bigint as reference_count,
        current_count::bigint as current_count,
        case when reference_count > 0 then bin_count::integer end as bin_count,
        case when reference_count >= {{ min_reference }} then psi end as psi,
        case
            when reference_count >= {{ min_reference }}
                then sqrt(greatest(js_divergence_nats / ln(2), 0))
        end as js_distance,
        case when reference_count >= {{ min_reference }} then ks_statistic end as ks_statistic,
        last_ingested_at
    from measured

)

select * from final
