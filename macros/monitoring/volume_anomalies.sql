{#
    The volume z-score, computed here only: the `volume_anomaly` test and mart_monitoring_alerts
    both call it (docs/requirements.md#volume-anomaly). Scores each group's row count on
    `checked_date` against the same weekday of the previous `history_weeks` weeks. A weekday
    without rows since the group first appeared counts as 0, and so does the checked day; the
    standard deviation is floored at 1 and at 5% of the mean, so a perfectly steady history
    does not turn a tiny change into an anomaly. Returns the anomalous groups only (|z| above
    `sensitivity`, at least `min_history_weeks` history weekdays with rows), with group_value,
    day, row_count, mean_count, z_score, stddev and history_weeks.
    Parameters: daily_counts (relation or CTE name with group_value, event_date, row_count: one
        row per group and day with rows), checked_date (SQL date expression, stable),
        sensitivity, min_history_weeks, history_weeks.
    Example:
        volume_scored as (
            {{ volume_anomalies('daily_counts', 'current_date - 1', 3, 4, 8) }}
        )
#}
{% macro volume_anomalies(
    daily_counts, checked_date, sensitivity, min_history_weeks, history_weeks
) %}
    with

    weekday_counts as (

        select
            group_value,
            event_date,
            row_count
        from {{ daily_counts }}
        where event_date between {{ checked_date }} - {{ history_weeks * 7 }}
            and {{ checked_date }}
            and ({{ checked_date }} - event_date) % 7 = 0

    ),

    volume_groups as (

        select
            group_value,
            min(event_date) as first_date
        from weekday_counts
        where event_date < {{ checked_date }}
        group by group_value

    ),

    {# every same weekday since the group first appeared, 0 when it had no rows #}
    grid as (

        select
            volume_groups.group_value,
            weeks_back.n = 0 as is_checked_day,
            coalesce(weekday_counts.row_count, 0) as row_count
        from volume_groups
        cross join generate_series(0, {{ history_weeks }}) as weeks_back (n)
        left join weekday_counts
            on volume_groups.group_value is not distinct from weekday_counts.group_value
                and weekday_counts.event_date = {{ checked_date }} - 7 * weeks_back.n
        where {{ checked_date }} - 7 * weeks_back.n >= volume_groups.first_date

    ),

    stats as (

        select
            group_value,
            max(row_count) filter (where is_checked_day) as row_count,
            avg(row_count) filter (where not is_checked_day) as mean_count,
            coalesce(stddev_samp(row_count) filter (where not is_checked_day), 0) as stddev,
            count(*) filter (where not is_checked_day and row_count > 0) as history_weeks
        from grid
        group by group_value

    ),

    scored as (

        select
            group_value,
            {{ checked_date }} as day,
            row_count,
            round(mean_count, 2) as mean_count,
            round(
                (row_count - mean_count) / greatest(stddev, 1, 0.05 * mean_count), 2
            ) as z_score,
            round(stddev, 2) as stddev,
            history_weeks
        from stats
        where history_weeks >= {{ min_history_weeks }}

    )

    select * from scored
    where abs(z_score) > {{ sensitivity }}
{% endmacro %}
