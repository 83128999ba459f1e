{#
    The calibration bin (1 .. bin_total) of a score in [0, 1], as scikit-learn's
    calibration_curve(strategy='uniform') bins it: edges numpy.linspace(0, 1, bin_total + 1)
    (i * (1 / bin_total), written out as literals so PostgreSQL compares the same doubles),
    bins closed on the right, the first also holding 0. width_bucket counts the inner edges
    <= score; an edge equal to the score belongs to the bin below.
    Parameters: score (SQL expression), bin_total (integer).
    Example: {{ calibration_bin('predicted_value', 10) }} as bin_number
#}
{% macro calibration_bin(score, bin_total) -%}
    {%- set step = 1.0 / (bin_total | int) -%}
    {%- set edges = [] -%}
    {%- for i in range(1, bin_total | int) -%}
        {%- do edges.append(i * step) -%}
    {%- endfor -%}
    {%- set edge_array = "array[" ~ edges | join(", ") ~ "]::double precision[]" -%}
    (
        1 + width_bucket(({{ score }}), {{ edge_array }})
        - (({{ score }}) = any({{ edge_array }}))::integer
    )
{%- endmacro %}
