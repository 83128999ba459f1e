{#
    Implementation of the `volume_anomaly` generic test (tests/generic/volume_anomaly.sql).
    Parameters: model, timestamp_column, group_by (or none), sensitivity, min_history_weeks,
        history_weeks, include_today, as_of (or none).
    Returns one row per anomalous group: group_value, day, row_count, mean_count, z_score,
    stddev, history_weeks (scored by the volume_anomalies macro). Unset thresholds come from
    the alert_volume_* vars (docs/requirements.md#alert-thresholds).
    Example:
        {{ default__test_volume_anomaly(
            ref('stg_ml_raw__predictions'), 'created_at', 'service_name', 3, 4, 8, false) }}
#}
{% macro default__test_volume_anomaly(
    model, timestamp_column, group_by=none, sensitivity=none, min_history_weeks=none,
    history_weeks=none, include_today=false, as_of=none
) %}
    {%- if sensitivity is none -%}
        {%- set sensitivity = var('alert_volume_sensitivity') -%}
    {%- endif -%}
    {%- if min_history_weeks is none -%}
        {%- set min_history_weeks = var('alert_volume_min_history_weeks') -%}
    {%- endif -%}
    {%- if history_weeks is none -%}
        {%- set history_weeks = var('alert_volume_history_weeks') -%}
    {%- endif -%}
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

    {# the z-score itself is macros/monitoring/volume_anomalies.sql, shared with the alerts #}
    anomalies as (

        {{ volume_anomalies(
            'daily_counts', day_sql, sensitivity, min_history_weeks, history_weeks) }}

    )

    select * from anomalies
{% endmacro %}
