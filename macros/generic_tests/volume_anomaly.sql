{#
    Implementation of the `volume_anomaly` generic test (tests/generic/volume_anomaly.sql).
    Parameters: model, timestamp_column, group_by (or none), sensitivity, min_history_weeks,
        history_weeks, include_today, as_of (or none).
    Returns one row per anomalous group: group_value, day, row_count, mean_count, z_score,
    stddev, history_weeks. The standard deviation is floored at 1 and at 5% of the mean, so a
    perfectly steady history does not turn a tiny change into an anomaly.
    Example:
        {{ default__test_volume_anomaly(
            ref('stg_ml_raw__predictions'), 'created_at', 'service_name', 3, 4, 8, false) }}
#}
{% macro default__test_volume_anomaly(
    model, timestamp_column, group_by=none, sensitivity=3, min_history_weeks=4, history_weeks=8,
    include_today=false, as_of=none
) %}
    {%- if not timestamp_column -%}
        {{ exceptions.raise_compiler_error("volume_anomaly needs timestamp_column") }}
    {%- endif -%}
    {%- if sensitivity is not number or sensitivity <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "volume_anomaly needs a positive sensitivity, got " ~ sensitivity) }}
    {%- endif -%}
    {%- if min_history_weeks is not integer or min_history_weeks < 1 -%}
        {{ exceptions.raise_compiler_error(
            "volume_anomaly needs min_history_weeks >= 1, got " ~ min_history_weeks) }}
    {%- endif -%}
    {%- if history_weeks is not integer or history_weeks < min_history_weeks -%}
        {{ exceptions.raise_compiler_error(
            "volume_anomaly needs history_weeks >= min_history_weeks, got " ~ history_weeks) }}
    {%- endif -%}
    {%- set today_sql = "(now() at time zone 'UTC')::date" -%}
    {%- if as_of is not none -%}
        {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', as_of | string) -%}
            {%- set day_sql = "date '" ~ as_of ~ "'" -%}
        {%- else -%}
            {%- set day_sql = "(" ~ as_of ~ ")::date" -%}
        {%- endif -%}
        {%- set offset_sql = "interval '1 day'" -%}
    {%- elif include_today -%}
        {%- set day_sql = today_sql -%}
        {%- set offset_sql = "now() - (" ~ today_sql ~ "::timestamp at time zone 'UTC')" -%}
    {%- else -%}
        {%- set day_sql = today_sql ~ " - 1" -%}
        {%- set offset_sql = "interval '1 day'" -%}
    {%- endif -%}
    {%- set group_sql = group_by if group_by else "'all'::text" -%}
    with

    params as (

        select
            {{ day_sql }} as checked_date,
            {{ offset_sql }} as day_offset

    ),

    events as (

        select
            ({{ group_sql }})::text as group_value,
            ({{ timestamp_column }} at time zone 'UTC')::date as event_date,
            {{ timestamp_column }} as event_at
        from {{ model }}
        {# the bounds repeat the day expression (stable, not a join) so partitions are pruned #}
        where {{ timestamp_column }}
            >= (({{ day_sql }} - {{ history_weeks * 7 }})::timestamp at time zone 'UTC')
            and {{ timestamp_column }}
            < (({{ day_sql }} + 1)::timestamp at time zone 'UTC')

    ),

    daily_counts as (

        select
            events.group_value,
            events.event_date,
            count(*) as row_count
        from events
        cross join params
        where (params.checked_date - events.event_date) % 7 = 0
            and events.event_at
            < (events.event_date::timestamp at time zone 'UTC') + params.day_offset
        group by events.group_value, events.event_date

    ),

    groups as (

        select
            daily_counts.group_value,
            min(daily_counts.event_date) as first_date
        from daily_counts
        cross join params
        where daily_counts.event_date < params.checked_date
        group by daily_counts.group_value

    ),

    {# every same weekday since the group first appeared, 0 when it had no rows #}
    grid as (

        select
            groups.group_value,
            weeks_back.n = 0 as is_checked_day,
            coalesce(daily_counts.row_count, 0) as row_count
        from groups
        cross join params
        cross join generate_series(0, {{ history_weeks }}) as weeks_back (n)
        left join daily_counts
            on groups.group_value is not distinct from daily_counts.group_value
                and daily_counts.event_date = params.checked_date - 7 * weeks_back.n
        where params.checked_date - 7 * weeks_back.n >= groups.first_date

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

    final as (

        select
            stats.group_value,
            params.checked_date as day,
            stats.row_count,
            round(stats.mean_count, 2) as mean_count,
            round(
                (stats.row_count - stats.mean_count)
                / greatest(stats.stddev, 1, 0.05 * stats.mean_count),
                2
            ) as z_score,
            round(stats.stddev, 2) as stddev,
            stats.history_weeks
        from stats
        cross join params
        where stats.history_weeks >= {{ min_history_weeks }}

    )

    select *
    from final
    where abs(z_score) > {{ sensitivity }}
{% endmacro %}
