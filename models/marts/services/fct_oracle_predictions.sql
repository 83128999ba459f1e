{#
    Oracle's predictions as a typed view, in place of its former per-service table: its
    fields taken out of `context`, and their outcomes (macros/marts/service_predictions.sql).
#}
{{ config(materialized='view') }}

{{ service_predictions('oracle', [
    ('query_text', 'query', 'text'),
    ('knowledge_id', 'knowledge_id', 'text'),
    ('relevance_scores', 'relevance_scores', 'json'),
]) }}
