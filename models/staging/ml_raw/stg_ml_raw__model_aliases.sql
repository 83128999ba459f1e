with

renamed as (

    select
        model_name,
        alias,
        version,
        set_at,
        set_by
    from {{ source('ml_raw', 'model_aliases') }}

)

select * from renamed
