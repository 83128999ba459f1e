{#
    One row per service from seeds/services.csv: is it writing, and is it right? Volumes come
    from the raw predictions (so they are as fresh as the last refresh); the 7-day error rate
    is the share of labeled predictions made in the last 7 days that are not correct (those
    without a predicted_value have no correctness and are left out). Windows are in hours:
    '7 days' would count calendar days in the session's time zone.
    A materialized view refreshed CONCURRENTLY (macros/marts/refresh_materialized_view.sql),
    hence the unique index on service_name. dbt-postgres persists a materialized view's own
    description but not its columns': the post_hook writes them (persist_column_docs).
#}
{{
    config(
        materialized='materialized_view',
        indexes=[{'columns': ['service_name'], 'unique': true}],
        post_hook="{{ persist_column_docs(this, model) }}",
    )
}}

with

services as (

    select * from {{ ref('services') }}

),

predictions as (

    select * from {{ ref('stg_ml_raw__predictions') }}

),

outcomes as (

    select * from {{ ref('fct_prediction_outcomes') }}

),

volume_daily as (

    select * from {{ ref('mart_prediction_volume_daily') }}

),

silences as (

    select * from {{ ref('int_service_silences_measured') }}

),

refreshed as (

    select now() as refreshed_at

),

recent_volume as (

    select
        service_name,
        max(created_at) as last_prediction_at,
        count(*) filter (where created_at > now() - interval '1 hour') as last_hour_count,
        count(*) as last_day_count
    from predictions
    where created_at > now() - interval '24 hours'
    group by service_name

),

last_seen as (

    {# Services silent for over a day: their last prediction, from the daily volumes (a row
       per day and service) rather than a scan of every prediction in the fact table. #}
    select
        service_name,
        max(last_prediction_at) as last_prediction_at
    from volume_daily
    group by service_name

),

error_rates as (

    select
        service_name,
        count(*) filter (where label_status = 'labeled') as labeled_7d_count,
        avg((not is_correct)::integer::double precision)
        filter (where label_status = 'labeled') as error_rate_7d
    from outcomes
    where created_at > now() - interval '168 hours'
    group by service_name

),

final as (

    select
        services.service_name,
        services.display_name,
        services.is_active,
        error_rates.error_rate_7d,
        services.silent_after_minutes,
        silences.is_silent,
        services.max_error_rate::double precision as max_error_rate,
        refreshed.refreshed_at,
        coalesce(recent_volume.last_prediction_at, last_seen.last_prediction_at)
            as last_prediction_at,
        coalesce(recent_volume.last_hour_count, 0)::bigint as last_hour_count,
        coalesce(recent_volume.last_day_count, 0)::bigint as last_day_count,
        coalesce(error_rates.labeled_7d_count, 0)::bigint as labeled_7d_count,
        coalesce(error_rates.error_rate_7d > services.max_error_rate, false)
            as is_error_rate_high
    from services
    cross join refreshed
    left join recent_volume on services.service_name = recent_volume.service_name
    left join last_seen on services.service_name = last_seen.service_name
    left join error_rates on services.service_name = error_rates.service_name
    left join silences on services.service_name = silences.service_name

)

select * from final
