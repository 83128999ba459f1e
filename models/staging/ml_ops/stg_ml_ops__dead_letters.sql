with

renamed as (

    select
        dead_letter_id,
        received_at,
        source as dead_letter_source,
        source_line,
        target_table,
        reason,
        payload,
        {# the service/type pair named by either form of the registration refusal #}
        substring(
            reason from '([a-z0-9-]+/[a-z0-9-]+) is not (?:registered )?in ml_ref\.prediction_types'
        ) as unregistered_prediction_type
    from {{ source('ml_ops', 'dead_letters') }}

)

select * from renamed
