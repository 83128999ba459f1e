{#
    Training metrics per model version and metric name: the latest value (the one the model
    repository's get_training_metrics returns), the first, the range and the series' extent
    (docs/requirements.md#model-registry-marts).
#}

with

metrics as (

    select * from {{ ref('int_training_metrics_unnested') }}

),

models as (

    select * from {{ ref('stg_ml_raw__ml_models') }}

),

summarized as (

    select
        model_id,
        metric_name,
        max(metric_value) filter (where recorded_rank = 1) as latest_value,
        (array_agg(metric_value order by trained_at, epoch, step))[1] as first_value,
        min(metric_value) as min_value,
        max(metric_value) as max_value,
        count(*)::bigint as point_count,
        max(epoch) as last_epoch,
        min(trained_at) as first_recorded_at,
        max(trained_at) as last_recorded_at
    from metrics
    group by model_id, metric_name

),

final as (

    select
        summarized.model_id,
        models.model_name,
        models.version,
        models.version_number,
        summarized.metric_name,
        summarized.latest_value,
        summarized.first_value,
        summarized.min_value,
        summarized.max_value,
        summarized.point_count,
        summarized.last_epoch,
        summarized.first_recorded_at,
        summarized.last_recorded_at
    from summarized
    inner join models on summarized.model_id = models.model_id

)

select * from final
