{#
    PSI and Jensen-Shannon divergence (in nats) of a current distribution against a reference
    over the same bins, as two aggregate expressions over one row per bin
    (docs/requirements.md#drift): drift_measures (numeric bins) and category_drift_measures
    (categories) share them. PSI floors both shares at 1e-4 (natural log); the divergence takes
    raw shares, empty bins contributing nothing.
    Parameters: reference_share, current_share (SQL expressions of a bin row).
    Returns the select-list items `psi` and `js_divergence_nats`.
    Example: select {{ share_divergences('bins.reference_share', 'bins.current_share') }}
        from bins
#}
{% macro share_divergences(reference_share, current_share) %}
    sum(
        (greatest({{ current_share }}, 1e-4) - greatest({{ reference_share }}, 1e-4))
        * ln(greatest({{ current_share }}, 1e-4) / greatest({{ reference_share }}, 1e-4))
    ) as psi,
    {%- for share in [reference_share, current_share] %}
        0.5 * sum(
            case
                when {{ share }} > 0
                    then {{ share }} * ln(
                            {{ share }} / (({{ reference_share }} + {{ current_share }}) / 2)
                        )
                else 0
            end
        ) {{- " +" if loop.first else " as js_divergence_nats" }}
    {%- endfor %}
{% endmacro %}
