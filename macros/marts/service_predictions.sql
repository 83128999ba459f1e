{#
    One service's predictions as a typed view: the common columns, the service's own fields
    taken out of `context`, and each prediction's outcome from fct_prediction_outcomes. The five
    models of models/marts/services/ are this macro with their service and fields.
    Parameters: service_name (as in seeds/services.csv), context_fields (list of
        (column, context key, kind) with kind text (->>), json (->) or number (a double
        precision, null when the value is not a JSON number)).
    Example:
        {{ service_predictions('daisy-chain', [('task_id', 'task_id', 'text')]) }}
#}
{% macro service_predictions(service_name, context_fields) %}
    {%- set kinds = ['text', 'json', 'number'] -%}
    {%- for column, key, kind in context_fields if kind not in kinds -%}
        {{ exceptions.raise_compiler_error(
            "service_predictions: kind of " ~ column ~ " must be one of "
            ~ kinds | join(', ') ~ ", got " ~ kind) }}
    {%- endfor -%}
    with

    predictions as (

        select * from {{ ref('stg_ml_raw__predictions') }}
        where service_name = {{ sql_literal(service_name) }}

    ),

    outcomes as (

        select * from {{ ref('fct_prediction_outcomes') }}
        where service_name = {{ sql_literal(service_name) }}

    ),

    final as (

        select
            predictions.prediction_id,
            predictions.created_at,
            predictions.prediction_type,
            predictions.model_version,
            predictions.predicted_value,
            predictions.confidence,
            outcomes.actual_value,
            outcomes.is_correct,
            outcomes.label_status,
            {%- for column, key, kind in context_fields %}
            {%- if kind == 'text' %}
            predictions.context ->> {{ sql_literal(key) }} as {{ column }}
            {%- elif kind == 'json' %}
            predictions.context -> {{ sql_literal(key) }} as {{ column }}
            {%- else %}
            case
                when jsonb_typeof(predictions.context -> {{ sql_literal(key) }}) = 'number'
                    then (predictions.context ->> {{ sql_literal(key) }})::double precision
            end as {{ column }}
            {%- endif %}
            {{- "," if not loop.last }}
            {%- endfor %}
        from predictions
        left join outcomes on predictions.prediction_id = outcomes.prediction_id

    )

    select * from final
{% endmacro %}
