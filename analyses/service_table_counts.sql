{#
    The guide's "missing service data" troubleshooting query
    (docs/requirements.md#service-views): the unified log against the service view. The
    per-service tables are now views over the log, so the counts agree by construction.
#}
with

unified as (

    select count(*) as prediction_count
    from {{ ref('stg_ml_raw__predictions') }}
    where service_name = 'code-roach'

),

service_view as (

    select count(*) as prediction_count
    from {{ ref('fct_code_roach_predictions') }}

),

final as (

    select
        'ml_predictions' as table_name,
        unified.prediction_count as count
    from unified

    union all

    select
        'fct_code_roach_predictions' as table_name,
        service_view.prediction_count as count
    from service_view

)

select * from final
