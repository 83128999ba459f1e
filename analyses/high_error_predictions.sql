{#
    The guide's "errors" query (docs/requirements.md#monitoring-queries): the 50 worst
    labeled predictions of the last 7 days.
#}
with

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}

),

final as (

    select
        service_name,
        prediction_type,
        predicted_value,
        actual_value,
        abs_error as error,
        created_at
    from outcomes
    where
        label_status = 'labeled'
        and abs_error > 0.3
        and created_at > now() - interval '7 days'

)

select * from final
order by error desc
limit 50
