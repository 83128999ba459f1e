{#
    One row per prediction with its latest outcome and its feedback.

    An outcome (or feedback) counts when it is observed within
    [created_at, created_at + label_lookback_days]; the same rule holds in full refreshes and
    incremental runs, which is what makes a sequence of incremental runs equal a full refresh.
    The lookback is label_lookback_days x 24 hours of elapsed time: adding days to a
    timestamptz counts calendar days in the session's time zone, which gains or loses an hour
    across a daylight-saving change (docs/requirements.md#label-lookback).
    label_status is judged against the run's start time (`run_started_at`, the same for every
    model of one dbt invocation), never against the newest prediction in the data: one
    service's clock (or a future-dated prediction) cannot move another service's labels.

    Incremental runs reprocess the predictions that changed since the previous run: new or
    replayed predictions (by ingested_at, whatever their created_at), predictions with new
    outcomes or feedback (by the outcome's or feedback's ingested_at, minus
    ingest_watermark_margin_minutes for late commits), and pending predictions whose lookback
    has run out. An outcome ingested now can only count for a prediction created at most
    label_lookback_days before it was observed, so the window of predictions to read follows
    what was ingested, not the predictions' creation times.

    The watermark and the window are read before the run and written into the SQL as
    literals: with constants the planner prunes the raw tables' daily partitions at plan time
    and reads `ingested_at >= watermark` through their BRIN indexes (migration 0021), a few
    pages per partition; a subquery would leave it guessing a third of each table and
    scanning it. The new_* imports read the raw tables directly for the same reason (a CTE
    used twice is materialized, and its scan cannot use an index).

    `scoped` is read four times and declared `not materialized`: on a distributed warehouse
    a materialized CTE is gathered on the coordinator, the whole log at a full refresh
    (docs/requirements.md#scale-out). Citus 14 runs this query on the workers (each shard's
    predictions with their outcomes and feedback) only when it joins the staging views'
    `raw union all archive` with inner joins, one left join at most (the seed's, last), and
    when every branch of a union selects the distribution column itself; hence `events`
    instead of two left joins, and prediction_key in the feedback imports rather than
    staging's nullif'd prediction_id (`bench/citus.py` checks the plan). model_id is carried
    so that marts per registered model need not join the log again.
#}
{{
    config(
        materialized='incremental',
        unique_key='prediction_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['prediction_id'], 'unique': true},
            {'columns': ['created_at']},
            {'columns': ['last_ingested_at']},
        ],
    )
}}

{%- set lookback = label_lookback_interval() -%}
{%- set margin = "interval '1 minute' * "
    ~ (var('ingest_watermark_margin_minutes', 60) | int) -%}
{%- set as_of = run_as_of() -%}
{%- set window_start = "'-infinity'::timestamptz" -%}
{%- set ingested_after = "'-infinity'::timestamptz" -%}
{%- if is_incremental() and execute -%}
    {%- set watermark_query -%}
        select coalesce(max(last_ingested_at) - {{ margin }}, '-infinity')::text from {{ this }}
    {%- endset -%}
    {%- set ingested_after = "'" ~ run_query(watermark_query).rows[0][0] ~ "'::timestamptz" -%}
    {#- The oldest prediction anything ingested since the watermark can change. Pending rows
        older than the watermark's lookback were settled by the previous run, which started
        after everything it read had been ingested. -#}
    {%- set window_query -%}
        select coalesce(least(
            (
                select min(created_at) from {{ ref('stg_ml_raw__predictions') }}
                where ingested_at >= {{ ingested_after }}
            ),
            (
                select min(observed_at) - {{ lookback }}
                from {{ ref('stg_ml_raw__prediction_outcomes') }}
                where ingested_at >= {{ ingested_after }}
            ),
            (
                select min(created_at) - {{ lookback }} from {{ ref('stg_ml_raw__feedback') }}
                where prediction_id is not null and ingested_at >= {{ ingested_after }}
            ),
            {{ ingested_after }} - {{ lookback }}
        ), 'infinity')::text
    {%- endset -%}
    {%- set window_start = "'" ~ run_query(window_query).rows[0][0] ~ "'::timestamptz" -%}
{%- endif %}

with

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}
    {% if is_incremental() %}
        where created_at >= {{ window_start }}
    {% endif %}

),

outcomes as (

    select * from {{ ref('stg_ml_raw__prediction_outcomes') }}
    {% if is_incremental() %}
        where observed_at >= {{ window_start }}
    {% endif %}

),

{# prediction_key, the stored column, so that the join to predictions stays on one shard of a
   distributed warehouse; the nil UUID is feedback about no prediction. #}
feedback as (

    select
        prediction_key as prediction_id,
        feedback_id,
        created_at,
        feedback_type,
        rating,
        ingested_at
    from {{ ref('stg_ml_raw__feedback') }}
    where
        prediction_key != '00000000-0000-0000-0000-000000000000'::uuid
        and created_at >= {{ window_start }}

),

{% if is_incremental() %}
    new_predictions as (

        select prediction_id from {{ ref('stg_ml_raw__predictions') }}
        where created_at >= {{ window_start }} and ingested_at >= {{ ingested_after }}

    ),

    new_outcomes as (

        select prediction_id from {{ ref('stg_ml_raw__prediction_outcomes') }}
        where observed_at >= {{ window_start }} and ingested_at >= {{ ingested_after }}

    ),

    new_feedback as (

        select prediction_key as prediction_id from {{ ref('stg_ml_raw__feedback') }}
        where
            prediction_key != '00000000-0000-0000-0000-000000000000'::uuid
            and created_at >= {{ window_start }}
            and ingested_at >= {{ ingested_after }}

    ),
{% endif %}

prediction_types as (

    select * from {{ ref('prediction_types') }}

),

{% if is_incremental() %}
    changed as (

        select new_predictions.prediction_id from new_predictions

        union

        select new_outcomes.prediction_id from new_outcomes

        union

        select new_feedback.prediction_id from new_feedback

        union

        select loaded.prediction_id
        from {{ this }} as loaded
        where
            loaded.label_status = 'pending'
            and loaded.created_at >= {{ window_start }}
            and loaded.created_at <= {{ as_of }} - {{ lookback }}

    ),
{% endif %}

scoped as not materialized (

    select predictions.*
    from predictions
    {% if is_incremental() %}
        inner join changed on predictions.prediction_id = changed.prediction_id
    {% endif %}

),

latest_outcomes as (

    {{ latest_within_lookback(
        'outcomes', 'outcome_id', 'observed_at', ['actual_value'], 'scoped', lookback
    ) }}

),

latest_feedback as (

    {{ latest_within_lookback(
        'feedback', 'feedback_id', 'created_at', ['feedback_type', 'rating'], 'scoped', lookback
    ) }}

),

{# One row per scoped prediction with its latest outcome and feedback: a row for each
   prediction, its latest outcome and its latest feedback, grouped by prediction (each kind has
   at most one row, and a kind's own columns are null in the others' rows, so max() picks it),
   instead of two left joins, which would keep the query from the workers (see above). #}
events as (

    select
        scoped.prediction_id,
        'prediction' as event_kind,
        null::double precision as actual_value,
        null::text as feedback_type,
        null::double precision as rating,
        null::timestamptz as event_at,
        null::timestamptz as first_event_at,
        null::bigint as event_count,
        null::timestamptz as last_ingested_at
    from scoped

    union all

    select
        latest_outcomes.prediction_id,
        'outcome' as event_kind,
        latest_outcomes.actual_value,
        null as feedback_type,
        null as rating,
        latest_outcomes.observed_at as event_at,
        latest_outcomes.first_event_at,
        latest_outcomes.event_count,
        latest_outcomes.last_ingested_at
    from latest_outcomes

    union all

    select
        latest_feedback.prediction_id,
        'feedback' as event_kind,
        null as actual_value,
        latest_feedback.feedback_type,
        latest_feedback.rating,
        latest_feedback.created_at as event_at,
        latest_feedback.first_event_at,
        latest_feedback.event_count,
        latest_feedback.last_ingested_at
    from latest_feedback

),

latest_events as (

    select
        prediction_id,
        max(actual_value) as actual_value,
        max(first_event_at) filter (where event_kind = 'outcome') as labeled_at,
        max(event_at) filter (where event_kind = 'outcome') as actual_observed_at,
        max(event_count) filter (where event_kind = 'outcome') as outcome_count,
        max(last_ingested_at) filter (where event_kind = 'outcome') as outcome_ingested_at,
        max(feedback_type) as latest_feedback_type,
        max(rating) as latest_feedback_rating,
        max(event_at) filter (where event_kind = 'feedback') as latest_feedback_at,
        max(event_count) filter (where event_kind = 'feedback') as feedback_count,
        max(last_ingested_at) filter (where event_kind = 'feedback') as feedback_ingested_at
    from events
    group by prediction_id

),

joined as (

    select
        scoped.prediction_id,
        scoped.created_at,
        scoped.created_date,
        scoped.service_name,
        scoped.prediction_type,
        prediction_types.kind as prediction_kind,
        scoped.model_id,
        scoped.model_version,
        scoped.predicted_value,
        scoped.confidence,
        latest_events.actual_value,
        prediction_types.tolerance,
        latest_events.labeled_at,
        latest_events.actual_observed_at,
        latest_events.latest_feedback_type,
        latest_events.latest_feedback_rating,
        latest_events.latest_feedback_at,
        scoped.predicted_value - latest_events.actual_value as error,
        case
            when prediction_types.kind = 'binary_classification'
                then (scoped.predicted_value >= prediction_types.decision_threshold)::integer
        end as predicted_class,
        coalesce(latest_events.outcome_count, 0)::integer as outcome_count,
        coalesce(latest_events.feedback_count, 0)::integer as feedback_count,
        greatest(
            scoped.ingested_at,
            latest_events.outcome_ingested_at,
            latest_events.feedback_ingested_at
        ) as last_ingested_at
    from scoped
    inner join latest_events on scoped.prediction_id = latest_events.prediction_id
    left join prediction_types on scoped.prediction_type = prediction_types.prediction_type

),

final as (

    select
        prediction_id,
        created_at,
        created_date,
        service_name,
        prediction_type,
        prediction_kind,
        model_id,
        model_version,
        predicted_value,
        confidence,
        actual_value,
        error,
        abs(error) as abs_error,
        error * error as squared_error,
        predicted_class,
        case
            when prediction_kind = 'binary_classification'
                then predicted_class::double precision = actual_value
            when prediction_kind = 'regression'
                then abs(error) <= tolerance
        end as is_correct,
        case
            when labeled_at is not null then 'labeled'
            when created_at > {{ as_of }} - {{ lookback }} then 'pending'
            else 'expired'
        end as label_status,
        labeled_at,
        extract(epoch from labeled_at - created_at)::double precision as label_lag_seconds,
        actual_observed_at,
        outcome_count,
        feedback_count,
        latest_feedback_type,
        latest_feedback_rating,
        latest_feedback_at,
        last_ingested_at
    from joined

)

select * from final
