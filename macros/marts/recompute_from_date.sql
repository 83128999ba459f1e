{#
    The first day an incremental run of a daily mart recomputes: the newest day already in the
    mart minus `days_back`, as a date literal. A literal rather than a subquery so that the
    planner sees how few rows of fct_prediction_outcomes the run reads and takes the created_at
    index instead of scanning the whole table. Call it only under `is_incremental()`.
    Parameters: date_column (the mart's day column), days_back (integer).
    Example: where created_at >= {{ recompute_from_date('metric_date', 31) }}::timestamp
        at time zone 'UTC'
#}
{% macro recompute_from_date(date_column, days_back) %}
    {%- if not execute -%}
        {{ return("date '1900-01-01'") }}
    {%- endif -%}
    {%- set query -%}
        select coalesce(max({{ adapter.quote(date_column) }}), date '1900-01-01')
            - {{ days_back | int }}
        from {{ this }}
    {%- endset -%}
    {%- set first_day = run_query(query).columns[0].values()[0] -%}
    {{ return("date '" ~ first_day ~ "'") }}
{% endmacro %}

{#
    The first day an incremental run of a daily mart over fct_prediction_outcomes recomputes:
    outcomes change predictions up to label_lookback_days old, plus one day that absorbs a DST
    hour in the fact table's interval arithmetic. The mart's day column is `metric_date`.
    Call it only under `is_incremental()`.
    Example: set recompute_from = daily_mart_recompute_from() if is_incremental()
#}
{% macro daily_mart_recompute_from() %}
    {{ return(recompute_from_date('metric_date', (var('label_lookback_days', 30) | int) + 1)) }}
{% endmacro %}
