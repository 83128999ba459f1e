{#
    One row per metric of each row of ml_raw.training_metrics (its JSON object unnested), with
    the row's place in the version's series: recorded_rank 1 is the latest, in the order the
    model repository merges them (trained_at, then epoch, then step; the last wins,
    docs/requirements.md#model-training-metrics).
#}

with

training_metrics as (

    select * from {{ ref('stg_ml_raw__training_metrics') }}

),

unnested as (

    select
        training_metrics.training_metric_id,
        training_metrics.model_id,
        metric.key as metric_name,
        training_metrics.epoch,
        training_metrics.step,
        training_metrics.trained_at,
        (metric.value #>> '{}')::double precision as metric_value
    from training_metrics
    cross join lateral jsonb_each(training_metrics.metrics) as metric

),

final as (

    select
        training_metric_id,
        model_id,
        metric_name,
        metric_value,
        epoch,
        step,
        trained_at,
        row_number() over (
            partition by model_id, metric_name
            order by trained_at desc, epoch desc nulls first, step desc nulls first
        ) as recorded_rank
    from unnested

)

select * from final
