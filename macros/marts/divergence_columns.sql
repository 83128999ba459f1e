{#
    The select-list items that turn a lateral `divergences` (the share_divergences aggregates
    plus bin_count) into the published drift columns (docs/requirements.md#drift): one
    projection for drift_measures (numeric bins) and category_drift_measures (categories).
    bin_count is null without reference values; psi and js_distance (sqrt of the divergence
    in bits) are null below drift_min_reference_rows (100) reference values.
    Parameters: day_window, divergences (the aliases of the row with reference_count and of
    the lateral with bin_count, psi and js_divergence_nats).
    Returns the select-list items `bin_count`, `psi` and `js_distance`.
    Example: select day_window.*, {{ divergence_columns('day_window', 'divergences') }}
#}
{% macro divergence_columns(day_window, divergences) %}
    {%- set min_reference = var('drift_min_reference_rows', 100) | int -%}
    case when {{ day_window }}.reference_count > 0 then {{ divergences }}.bin_count::integer end
        as bin_count,
    case
        when {{ day_window }}.reference_count >= {{ min_reference }} then {{ divergences }}.psi
    end as psi,
    case
        when {{ day_window }}.reference_count >= {{ min_reference }}
            then sqrt(greatest({{ divergences }}.js_divergence_nats / ln(2), 0))
    end as js_distance
{%- endmacro %}
