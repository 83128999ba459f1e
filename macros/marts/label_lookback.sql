{#
    The label lookback as elapsed time: label_lookback_days x 24 hours. Adding
    `interval '1 day'` to a timestamptz counts calendar days in the session's time zone, one
    hour more or less across a daylight-saving change; hours are the same in every zone, so
    the lookback is the UTC one whatever the server's TimeZone
    (docs/requirements.md#label-lookback).
    Example: observed_at <= created_at + {{ label_lookback_interval() }}
#}
{% macro label_lookback_interval() -%}
    (interval '1 hour' * {{ 24 * (var('label_lookback_days', 30) | int) }})
{%- endmacro %}

{#
    The time label_status is judged against: when this dbt invocation started (UTC), as a
    timestamptz literal. The same for every model of one run, and independent of the data, so
    a service whose clock runs ahead (or a future-dated prediction) moves nobody's labels.
    Example: when created_at > {{ run_as_of() }} - {{ label_lookback_interval() }} then 'pending'
#}
{% macro run_as_of() -%}
    ('{{ run_started_at.isoformat() }}'::timestamptz)
{%- endmacro %}
