{#
    The first day an incremental run of a daily model recomputes, as a date literal: the
    oldest day of `source` with a row ingested since this model's own watermark
    (max(last_ingested_at) minus ingest_watermark_margin_minutes), so that late and replayed
    rows reach their day however old it is. With `pending_lookback`, also the day
    label_lookback_days before the watermark: predictions of that age turned from pending to
    expired without being re-ingested (docs/requirements.md#incremental-marts).
    A literal rather than a subquery so that the planner sees how few rows of the source the
    run reads and takes its index. 'infinity' when nothing changed, '-infinity' when this
    model is empty. Call it only under `is_incremental()`; the model needs a
    `last_ingested_at` column and `source` a `source_ingested_column`.
    Parameters: source (relation), source_date_column (the day column of the source),
    source_ingested_column (its ingestion timestamp), pending_lookback (boolean).
    Example: where created_date >= {{ recompute_from_date(ref('fct_prediction_outcomes'),
        'created_date', 'last_ingested_at', true) }}
#}
{% macro recompute_from_date(source, source_date_column, source_ingested_column,
    pending_lookback=false) %}
    {%- if not execute -%}
        {{ return("date '-infinity'") }}
    {%- endif -%}
    {%- set margin = "interval '1 minute' * "
        ~ (var('ingest_watermark_margin_minutes', 60) | int) -%}
    {#- the watermark first, as a literal: a subquery over a distributed source correlated with
        it is refused on a Citus coordinator (docs/requirements.md#scale-out) -#}
    {%- set watermark_query -%}
        select (max(last_ingested_at) - {{ margin }})::text from {{ this }}
    {%- endset -%}
    {%- set watermark = run_query(watermark_query).columns[0].values()[0] -%}
    {%- if watermark is none -%}
        {{ return("date '-infinity'") }}
    {%- endif -%}
    {%- set ingested_after = "'" ~ watermark ~ "'::timestamptz" -%}
    {%- set query -%}
        select coalesce(least(
            (
                select min({{ adapter.quote(source_date_column) }}) from {{ source }}
                where {{ adapter.quote(source_ingested_column) }} >= {{ ingested_after }}
            ),
            {% if pending_lookback -%}
                (({{ ingested_after }} - {{ label_lookback_interval() }}) at time zone 'UTC')::date,
            {%- endif %}
            null
        ), date 'infinity')::text
    {%- endset -%}
    {%- set first_day = run_query(query).columns[0].values()[0] -%}
    {{ return("date '" ~ first_day ~ "'") }}
{% endmacro %}

{#
    The first day an incremental run of a daily mart over fct_prediction_outcomes recomputes:
    the oldest day of a prediction that changed since the mart's watermark, or that may have
    expired since. The mart's day column is `metric_date`. Call it only under
    `is_incremental()`.
    Example: set recompute_from = daily_mart_recompute_from() if is_incremental()
#}
{% macro daily_mart_recompute_from() %}
    {{ return(recompute_from_date(
        ref('fct_prediction_outcomes'), 'created_date', 'last_ingested_at', true
    )) }}
{% endmacro %}

{#
    The fact rows an incremental daily mart recomputes: the predictions of every day from
    `recompute_from` (daily_mart_recompute_from) on, so that each recomputed day is whole;
    every row on a full refresh. Call it as the mart's import of fct_prediction_outcomes.
    Parameters: recompute_from (the date literal, or none outside an incremental run).
    Example: outcomes as ({{ daily_mart_outcomes(recompute_from) }})
#}
{% macro daily_mart_outcomes(recompute_from) %}
    select * from {{ ref('fct_prediction_outcomes') }}
    {% if is_incremental() %}
        where created_at >= {{ recompute_from }}::timestamp at time zone 'UTC'
    {% endif %}
{% endmacro %}

{#
    The predictions an incremental model that collects each day's values reads: every
    prediction from the oldest day that received one since the model's watermark (its
    last_ingested_at, recompute_from_date) on, however old that day, so that each rebuilt day
    is whole; every prediction on a full refresh. Outcomes do not change a day's values, so the
    model reads the predictions, not fct_prediction_outcomes (docs/requirements.md#incremental-marts).
    Call it as the model's import of stg_ml_raw__predictions; the model's unique key is its
    created_date.
    Parameters: columns (the columns or expressions of stg_ml_raw__predictions to read: a
    model that reads few of them keeps the others, such as context, out of its scan).
    Example: predictions as ({{ collected_day_predictions(['created_date', 'context']) }})
#}
{% macro collected_day_predictions(columns) %}
    select
        {%- for column in columns %}
            {{ column }} {{- "," if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_ml_raw__predictions') }}
    {% if is_incremental() %}
        where
            created_at >= {{ recompute_from_date(
                ref('stg_ml_raw__predictions'), 'created_date', 'ingested_at'
            ) }}::timestamp at time zone 'UTC'
    {% endif %}
{% endmacro %}
