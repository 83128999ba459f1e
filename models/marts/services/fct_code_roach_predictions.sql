{#
    Code Roach's predictions as a typed view, in place of its former per-service table: its
    fields taken out of `context`, and their outcomes (macros/marts/service_predictions.sql).
#}
{{ config(materialized='view') }}

{{ service_predictions('code-roach', [
    ('project_id', 'project_id', 'text'),
    ('file_path', 'file_path', 'text'),
    ('code_metrics', 'code_metrics', 'json'),
]) }}
