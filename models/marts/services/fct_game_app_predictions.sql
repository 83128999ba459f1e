{#
    Game App's predictions as a typed view, in place of its former per-service table: its
    fields taken out of `context`, and their outcomes (macros/marts/service_predictions.sql).
#}
{{ config(materialized='view') }}

{{ service_predictions('game-app', [
    ('session_id', 'session_id', 'text'),
    ('narrative_id', 'narrative_id', 'text'),
    ('scenario_id', 'scenario_id', 'text'),
]) }}
