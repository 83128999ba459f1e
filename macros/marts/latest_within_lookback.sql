{#
    Each prediction's newest event (an outcome, a feedback) observed within its label lookback,
    with how many there were, when the first one was observed and when the newest was ingested
    (docs/requirements.md#label-lookback). Ties on time go to the larger event id. One
    definition for outcomes and feedback, so both count an event by the same rule.
    Parameters: events (relation with prediction_id, ingested_at), event_id, event_at (the
    events' time column), columns (list carried from the newest event), predictions (relation
    with prediction_id, created_at), lookback (an interval expression).
    Returns: prediction_id, the columns, event_at, recency_rank (1), event_count,
    first_event_at, last_ingested_at.
    Example: {{ latest_within_lookback('outcomes', 'outcome_id', 'observed_at',
        ['actual_value'], 'scoped', label_lookback_interval()) }}
#}
{% macro latest_within_lookback(events, event_id, event_at, columns, predictions, lookback) -%}
    select ranked.*
    from (
        select
            {{ events }}.prediction_id,
            {%- for column in columns %}
            {{ events }}.{{ column }},
            {%- endfor %}
            {{ events }}.{{ event_at }},
            row_number() over (
                partition by {{ events }}.prediction_id
                order by {{ events }}.{{ event_at }} desc, {{ events }}.{{ event_id }} desc
            ) as recency_rank,
            count(*) over (partition by {{ events }}.prediction_id) as event_count,
            min({{ events }}.{{ event_at }}) over (
                partition by {{ events }}.prediction_id
            ) as first_event_at,
            max({{ events }}.ingested_at) over (
                partition by {{ events }}.prediction_id
            ) as last_ingested_at
        from {{ events }}
        inner join {{ predictions }}
            on
                {{ events }}.prediction_id = {{ predictions }}.prediction_id
                and {{ events }}.{{ event_at }} >= {{ predictions }}.created_at
                and {{ events }}.{{ event_at }} <= {{ predictions }}.created_at + {{ lookback }}
    ) as ranked
    where ranked.recency_rank = 1
{%- endmacro %}
