{#
    Implementation of the `recency` generic test (tests/generic/recency.sql).
    Parameters: model, field, datepart, interval, group_by (or none).
    Returns group_value, day (UTC day of the newest row), most_recent_at, threshold_at.
    Example: {{ default__test_recency(ref('stg_ml_raw__predictions'), 'created_at', 'hour', 1) }}
#}
{% macro default__test_recency(model, field, datepart, interval, group_by=none) %}
    {%- set dateparts = ['second', 'minute', 'hour', 'day', 'week', 'month', 'year'] -%}
    {%- if not field -%}
        {{ exceptions.raise_compiler_error("recency needs field") }}
    {%- endif -%}
    {%- if datepart not in dateparts -%}
        {{ exceptions.raise_compiler_error(
            "recency datepart must be one of " ~ dateparts | join(', ') ~ ", got " ~ datepart) }}
    {%- endif -%}
    {%- if interval is not number or interval <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "recency needs a positive number for interval, got " ~ interval) }}
    {%- endif -%}
    {%- set group_sql = group_by if group_by else "'all'::text" -%}
    with

    {# an empty model still yields one (stale) row #}
    recency as (

        select
            {{ group_sql }} as group_value,
            max({{ field }}) as most_recent_at
        from {{ model }}
        group by 1
        {%- if not group_by %}
        union all
        select 'all'::text, null
        where not exists (select 1 from {{ model }})
        {%- endif %}

    ),

    final as (

        select
            group_value,
            (most_recent_at at time zone 'UTC')::date as day,
            most_recent_at,
            {{ dbt.dateadd(datepart, interval * -1, dbt.current_timestamp()) }} as threshold_at
        from recency

    )

    select *
    from final
    where most_recent_at is null or most_recent_at < threshold_at
{% endmacro %}
