{#
    The drift_baseline var as rows (service_name, prediction_type, start_date, end_date): the
    periods pinned as drift references (docs/requirements.md#drift), each entry validated;
    no rows when none is pinned.
    Parameters: pinned (the var's list of mappings).
    Example: pinned_baselines as ({{ pinned_drift_baselines(var('drift_baseline', [])) }})
#}
{% macro pinned_drift_baselines(pinned) %}
    {%- for baseline in pinned -%}
        {%- for key in ['service_name', 'prediction_type', 'start_date', 'end_date'] -%}
            {%- if baseline is not mapping or key not in baseline -%}
                {{ exceptions.raise_compiler_error(
                    "drift_baseline: each entry needs service_name, prediction_type,"
                    ~ " start_date and end_date, got " ~ baseline
                ) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {% if pinned %}
        select
            service_name,
            prediction_type,
            start_date,
            end_date
        from (
            values
            {% for baseline in pinned %}
                (
                    {{ sql_literal(baseline['service_name']) }}::text,
                    {{ sql_literal(baseline['prediction_type']) }}::text,
                    {{ sql_literal(baseline['start_date']) }}::date,
                    {{ sql_literal(baseline['end_date']) }}::date
                ){{ "," if not loop.last }}
            {% endfor %}
        ) as pinned (service_name, prediction_type, start_date, end_date)
    {% else %}
        select
            null::text as service_name,
            null::text as prediction_type,
            null::date as start_date,
            null::date as end_date
        where false
    {% endif %}
{% endmacro %}
