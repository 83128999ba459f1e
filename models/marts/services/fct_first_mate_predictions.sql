{#
    First Mate's predictions as a typed view, in place of its former per-service table: its
    fields taken out of `context`, and their outcomes (macros/marts/service_predictions.sql).
#}
{{ config(materialized='view') }}

{{ service_predictions('first-mate', [
    ('user_id', 'user_id', 'text'),
    ('roll_type', 'roll_type', 'text'),
    ('stat_name', 'stat_name', 'text'),
    ('stat_value', 'stat_value', 'number'),
]) }}
