{#
    The guide's "data quality" query (docs/requirements.md#monitoring-queries): accuracy by
    service over 30 days. The guide's error was |predicted - actual| per row; here MAE per day
    and type, weighted by labels.
#}
with

performance as (

    select * from {{ ref('mart_performance_daily') }}

),

final as (

    select
        service_name,
        sum(prediction_count) as total_predictions,
        sum(labeled_count) as with_actual,
        sum(coalesce(mae, 1 - accuracy) * labeled_count)
        / nullif(sum(labeled_count), 0) as avg_error,
        min(min_error) as min_error,
        max(max_error) as max_error
    from performance
    where metric_date > current_date - 30
    group by service_name

)

select * from final
order by avg_error asc
