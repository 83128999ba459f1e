{#
    Standard normal CDF, Phi(z), for p-values on PostgreSQL 14+ (erf() only arrived in 16).
    Abramowitz & Stegun 7.1.26 for erf, absolute error below 1.5e-7: fine for p-values and
    significance flags, not for 1e-9 comparisons.
    Parameters: z (SQL expression, double precision).
    Example: 2 * (1 - {{ normal_cdf('abs(z_score)') }}) as p_value
#}
{% macro normal_cdf(z) -%}
    (0.5 * (1 + sign(({{ z }}) / sqrt(2.0)) * (1 - (
        0.254829592 * (1 / (1 + 0.3275911 * abs(({{ z }}) / sqrt(2.0))))
        - 0.284496736 * power(1 / (1 + 0.3275911 * abs(({{ z }}) / sqrt(2.0))), 2)
        + 1.421413741 * power(1 / (1 + 0.3275911 * abs(({{ z }}) / sqrt(2.0))), 3)
        - 1.453152027 * power(1 / (1 + 0.3275911 * abs(({{ z }}) / sqrt(2.0))), 4)
        + 1.061405429 * power(1 / (1 + 0.3275911 * abs(({{ z }}) / sqrt(2.0))), 5)
    ) * exp(-power(({{ z }}) / sqrt(2.0), 2)))))::double precision
{%- endmacro %}
