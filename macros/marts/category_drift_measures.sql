{#
    PSI and Jensen-Shannon distance of a categorical feature's current categories against its
    reference categories, with the categories that appeared and vanished
    (docs/requirements.md#feature-drift): the categorical counterpart of drift_measures, with
    the same conventions.

    - The bins are the categories of either side (their union); shares are over the values
      present (missing values are measured apart, as missing shares).
    - PSI: shares floored at 1e-4, natural log (as drift_measures), so a new or vanished
      category weighs (share - 1e-4) * ln(share / 1e-4) instead of an infinity.
    - Jensen-Shannon distance: raw shares, base 2, sqrt of the divergence
      (scipy.spatial.distance.jensenshannon(p, q, base=2)).
    - new_category_count: categories of the day absent from the reference;
      vanished_category_count: reference categories absent from the day.
    PSI and JS are null when the reference has fewer than drift_min_reference_rows (100)
    values; bin_count and the category counts are null without reference values.

    Parameters: windows (a relation or CTE name) with reference_count,
    reference_categories (text[]) and reference_category_counts (bigint[], same order),
    current_count, categories and category_counts (the day's). Returns a select of every
    column of `windows` plus bin_count, psi, js_distance, new_category_count and
    vanished_category_count.
    Example: measured as ({{ category_drift_measures('categorical_windows') }})
#}
{% macro category_drift_measures(windows) %}
    select
        day_window.*,
        {{ divergence_columns('day_window', 'divergences') }},
        case
            when day_window.reference_count > 0 then divergences.new_category_count::integer
        end as new_category_count,
        case
            when day_window.reference_count > 0
                then divergences.vanished_category_count::integer
        end as vanished_category_count
    from {{ windows }} as day_window
    cross join
        lateral (  -- noqa: ST05
            select
                count(*) as bin_count,
                count(*) filter (
                    where shares.reference_share = 0 and shares.current_share > 0
                ) as new_category_count,
                count(*) filter (
                    where shares.current_share = 0 and shares.reference_share > 0
                ) as vanished_category_count,
                {{ share_divergences('shares.reference_share', 'shares.current_share') }}
            from (
                select
                    coalesce(reference.category_count, 0)::double precision
                    / day_window.reference_count as reference_share,
                    coalesce(current_day.category_count, 0)::double precision
                    / day_window.current_count as current_share
                from
                    unnest(day_window.reference_categories, day_window.reference_category_counts)
                        as reference (category, category_count)
                full join
                    unnest(day_window.categories, day_window.category_counts)
                        as current_day (category, category_count)
                    on reference.category = current_day.category
                where day_window.reference_count > 0 and day_window.current_count > 0
            ) as shares
        ) as divergences
{% endmacro %}
