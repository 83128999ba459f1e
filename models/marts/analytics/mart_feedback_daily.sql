{# Feedback per UTC day and service: volumes by type and the mean rating
   (ml_raw.ml_feedback). #}
{{ config(contract={'enforced': true}) }}

with

feedback as (

    select * from {{ ref('stg_ml_raw__feedback') }}

),

daily as (

    select
        created_date as metric_date,
        service_name,
        count(*)::bigint as feedback_count,
        count(*) filter (where feedback_type = 'thumbs_up')::bigint as thumbs_up_count,
        count(*) filter (where feedback_type = 'thumbs_down')::bigint as thumbs_down_count,
        count(*) filter (where feedback_type = 'rating')::bigint as rating_count,
        count(*) filter (where feedback_type = 'correction')::bigint as correction_count,
        count(*) filter (where feedback_type = 'comment')::bigint as comment_count,
        count(prediction_id)::bigint as linked_to_prediction_count,
        avg(rating) as avg_rating
    from feedback
    group by created_date, service_name

),

final as (

    select
        {{ surrogate_key(['metric_date', 'service_name']) }} as feedback_daily_id,
        metric_date,
        service_name,
        feedback_count,
        thumbs_up_count,
        thumbs_down_count,
        rating_count,
        correction_count,
        comment_count,
        linked_to_prediction_count,
        avg_rating,
        {{ safe_divide('thumbs_up_count', 'thumbs_up_count + thumbs_down_count') }}
            as thumbs_up_share
    from daily

)

select * from final
