{#
    Daisy Chain's predictions as a typed view, in place of its former per-service table: its
    fields taken out of `context`, and their outcomes (macros/marts/service_predictions.sql).
#}
{{ config(materialized='view') }}

{{ service_predictions('daisy-chain', [
    ('task_id', 'task_id', 'text'),
    ('task_type', 'task_type', 'text'),
]) }}
