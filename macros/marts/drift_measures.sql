{#
    PSI, Jensen-Shannon distance and KS of each row's current values against its reference
    values (docs/requirements.md#drift): one definition for every drift mart, whatever its
    reference (the rolling window before the day, or a fixed baseline).

    - PSI: bins are the reference's deciles (percentile_cont 0.1 .. 0.9, duplicates removed,
      both ends open: bin = width_bucket(value, edges), 0 .. number of edges); shares floored
      at 1e-4; natural log.
    - Jensen-Shannon distance: same bins, raw (unfloored) shares, base 2, sqrt of the
      divergence (what scipy.spatial.distance.jensenshannon(p, q, base=2) returns).
    - KS: two-sample Kolmogorov-Smirnov statistic on the raw values, max |F_ref - F_day|
      (scipy.stats.ks_2samp(...).statistic).
    All three are null when the reference has fewer than drift_min_reference_rows (100) values;
    bin_count is null without reference values.

    How, without a row per value: the deciles are read off the sorted reference with
    percentile_cont's own interpolation; counts come from binary searches,
    width_bucket(x, sorted array) = #{v <= x}, and #{v >= e} = width_bucket(-e, negated_values),
    so a bin [e_b, e_b+1) holds #{v >= e_b} - #{v >= e_b+1} reference values; for KS both ECDFs
    are step functions and F_day only steps at the day's values c, so the largest gap is at
    some c or just below it: max over c of |F_ref(c) - F_day(c)| and |F_ref(c-) - F_day(c-)|.

    Parameters: windows (a relation or CTE name) with reference_count, ascending_values (the
    reference, ascending), negated_values (-v ascending), current_count and current_values (the
    day's values, ascending). Returns a select of every column of `windows` plus bin_count,
    psi, js_distance and ks_statistic.
    Example: measured as ({{ drift_measures('reference_windows') }})
#}
{% macro drift_measures(windows) %}
    {%- set min_reference = var('drift_min_reference_rows', 100) | int -%}
    select
        day_window.*,
        {{ divergence_columns('day_window', 'divergences') }},
        case
            when day_window.reference_count >= {{ min_reference }} then ks.ks_statistic
        end as ks_statistic
    from {{ windows }} as day_window
    cross join
        lateral (  -- noqa: ST05
            {# percentile_cont's own arithmetic (float8_lerp) on the sorted array #}
            select array_agg(distinct deciles.decile order by deciles.decile) as bin_edges
            from (
                select
                    day_window.ascending_values[floor(ranks.rank_position)::integer + 1]
                    + (ranks.rank_position - floor(ranks.rank_position))
                    * (
                        day_window.ascending_values[ceil(ranks.rank_position)::integer + 1]
                        - day_window.ascending_values[floor(ranks.rank_position)::integer + 1]
                    ) as decile
                from
                    unnest(array[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]::double precision[])
                        as quantiles (quantile)
                cross join
                    lateral (
                        select
                            quantiles.quantile * (day_window.reference_count - 1)
                                as rank_position
                    ) as ranks
                where day_window.reference_count > 0
            ) as deciles
        ) as reference_edges
    cross join
        lateral (  -- noqa: ST05
            {# Bin b holds [e_b, e_b+1): #{v >= e_b} - #{v >= e_b+1} reference values, where
               the missing e_0 counts every value and the missing e_k+1 none. #}
            select
                count(*) as bin_count,
                {{ share_divergences('bin_shares.reference_share', 'bin_shares.current_share') }}
            from (
                select
                    (
                        coalesce(
                            width_bucket(
                                -reference_edges.bin_edges[bins.bin_number],
                                day_window.negated_values
                            ),
                            day_window.reference_count
                        )
                        - coalesce(
                            width_bucket(
                                -reference_edges.bin_edges[bins.bin_number + 1],
                                day_window.negated_values
                            ),
                            0
                        )
                    )::double precision / day_window.reference_count as reference_share,
                    coalesce(current_bins.value_count, 0)::double precision
                    / day_window.current_count as current_share
                from
                    generate_series(0, cardinality(reference_edges.bin_edges))
                        as bins (bin_number)
                left join (
                    select
                        width_bucket(day_values.feature_value, reference_edges.bin_edges)
                            as bin_number,
                        count(*) as value_count
                    from unnest(day_window.current_values) as day_values (feature_value)
                    group by width_bucket(day_values.feature_value, reference_edges.bin_edges)
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
{% endmacro %}
