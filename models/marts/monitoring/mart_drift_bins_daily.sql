{#
    The histogram behind each drift verdict: for every day, service, prediction type and feature
    that mart_drift_daily marks 'warn' or 'drift', the share of the reference window's values and
    of the day's values in each PSI bin (docs/requirements.md#drift). The bins are those of the
    drift_measures macro: the reference's deciles (percentile_cont 0.1 .. 0.9, distinct, both
    ends open, bin = width_bucket(value, edges)), so the floored shares of a day's rows sum to
    its psi in mart_drift_daily (pytests/test_report.py checks it). The report draws them as
    reference-versus-current bars.

    Only the flagged days: a quiet day's histogram says nothing the PSI does not, and the
    flagged days are few, so a full rebuild reads a few reference windows.
#}

{%- set reference_days = var('drift_reference_days', 28) | int -%}

with

drift_daily as (

    select * from {{ ref('mart_drift_daily') }}

),

collected as (

    select * from {{ ref('int_feature_values_collected') }}

),

flagged_days as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        drift_status,
        psi
    from drift_daily
    where drift_status != 'ok'

),

{# every value of the window and of the day once, all model versions pooled #}
window_values as (

    select
        flagged_days.drift_date,
        flagged_days.service_name,
        flagged_days.prediction_type,
        flagged_days.feature_name,
        collected.created_date = flagged_days.drift_date as is_current,
        unnest(collected.sorted_values) as feature_value
    from flagged_days
    inner join collected
        on
            flagged_days.service_name = collected.service_name
            and flagged_days.prediction_type = collected.prediction_type
            and flagged_days.feature_name = collected.feature_name
            and collected.created_date
            between flagged_days.drift_date - {{ reference_days }} and flagged_days.drift_date

),

edges as (

    select
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        count(*) filter (where not is_current) as reference_count,
        count(*) filter (where is_current) as current_count,
        percentile_cont(array[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
        within group (order by feature_value) filter (where not is_current) as deciles
    from window_values
    group by drift_date, service_name, prediction_type, feature_name

),

distinct_edges as (

    select
        edges.drift_date,
        edges.service_name,
        edges.prediction_type,
        edges.feature_name,
        edges.reference_count,
        edges.current_count,
        (
            select array_agg(distinct decile order by decile)
            from unnest(edges.deciles) as deciles (decile)
        ) as bin_edges
    from edges

),

bins as (

    select
        distinct_edges.*,
        bin_numbers.bin_number
    from distinct_edges
    cross join
        lateral generate_series(0, cardinality(distinct_edges.bin_edges))
            as bin_numbers (bin_number)

),

{# materialized: the planner guesses one row here and would recount it for every bin #}
binned_counts as materialized (

    select
        window_values.drift_date,
        window_values.service_name,
        window_values.prediction_type,
        window_values.feature_name,
        width_bucket(window_values.feature_value, distinct_edges.bin_edges) as bin_number,
        count(*) filter (where not window_values.is_current) as reference_values,
        count(*) filter (where window_values.is_current) as current_values
    from window_values
    inner join distinct_edges
        on
            window_values.drift_date = distinct_edges.drift_date
            and window_values.service_name = distinct_edges.service_name
            and window_values.prediction_type = distinct_edges.prediction_type
            and window_values.feature_name = distinct_edges.feature_name
    group by
        window_values.drift_date,
        window_values.service_name,
        window_values.prediction_type,
        window_values.feature_name,
        width_bucket(window_values.feature_value, distinct_edges.bin_edges)

),

final as (

    select
        {{ surrogate_key([
            'bins.drift_date', 'bins.service_name', 'bins.prediction_type',
            'bins.feature_name', 'bins.bin_number'
        ]) }} as drift_bin_id,
        bins.drift_date,
        bins.service_name,
        bins.prediction_type,
        bins.feature_name,
        bins.drift_date - {{ reference_days }} as reference_start_date,
        flagged_days.drift_status,
        flagged_days.psi,
        bins.bin_number,
        bins.bin_edges[bins.bin_number] as bin_lower,
        bins.bin_edges[bins.bin_number + 1] as bin_upper,
        coalesce(binned_counts.reference_values, 0)::bigint as reference_values,
        coalesce(binned_counts.current_values, 0)::bigint as current_values,
        coalesce(binned_counts.reference_values, 0)::double precision
        / bins.reference_count as reference_share,
        coalesce(binned_counts.current_values, 0)::double precision
        / bins.current_count as current_share
    from bins
    inner join flagged_days
        on
            bins.drift_date = flagged_days.drift_date
            and bins.service_name = flagged_days.service_name
            and bins.prediction_type = flagged_days.prediction_type
            and bins.feature_name = flagged_days.feature_name
    left join binned_counts
        on
            bins.drift_date = binned_counts.drift_date
            and bins.service_name = binned_counts.service_name
            and bins.prediction_type = binned_counts.prediction_type
            and bins.feature_name = binned_counts.feature_name
            and bins.bin_number = binned_counts.bin_number

)

select * from final
