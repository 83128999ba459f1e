{#
    Model registry (ml_raw.ml_models, docs/requirements.md#model-registry) beside training,
    offline evaluation, the registry's own training metrics (the latest value of each metric
    the model repository recorded, docs/requirements.md#model-registry-marts) and online
    performance: one row per registered model version. Online
    figures come from fct_prediction_outcomes (predictions whose model_id is this model), over
    the 30 days before the newest prediction; the fact carries model_id, so the log is not read
    again (on a distributed warehouse that join gathered it on the coordinator,
    docs/requirements.md#scale-out).

    The champion of a model_name is the version the registry's champion alias points at. Without
    that alias, among its active deployed versions: the one the registry names (metadata role
    'champion'), else the one that served the most predictions in that window, else the one
    deployed last. A challenger is deployed after the champion, so "deployed last" alone would
    crown a challenger on its first day of a 1% ramp; traffic says which version the service
    relies on. Every other active deployed version is a challenger.
#}
{{ config(contract={'enforced': true}) }}

with

models as (

    select * from {{ ref('stg_ml_raw__ml_models') }}

),

training as (

    select * from {{ ref('stg_ml_raw__model_training_sessions') }}

),

evaluations as (

    select * from {{ ref('stg_ml_raw__model_evaluations') }}

),

{# read twice (the window's reference time, then the figures) and not materialized: on a
   distributed warehouse a materialized CTE gathers the whole fact on the coordinator, where
   inlined each read is an aggregate the workers compute (docs/requirements.md#scale-out) #}
outcomes as not materialized (

    select * from {{ ref('fct_prediction_outcomes') }}

),

registry as (

    select * from {{ ref('dim_model_versions') }}

),

registry_metrics as (

    select
        model_id,
        jsonb_object_agg(metric_name, metric_value order by metric_name) as registry_metrics
    from {{ ref('int_training_metrics_unnested') }}
    where recorded_rank = 1
    group by model_id

),

latest_training as (

    select distinct on (model_id)
        model_id,
        training_loss,
        validation_loss,
        finished_at as trained_at
    from training
    order by model_id asc, started_at desc

),

latest_evaluation as (

    select distinct on (model_id)
        model_id,
        accuracy as offline_accuracy,
        precision_score as offline_precision,
        recall as offline_recall,
        f1_score as offline_f1,
        evaluated_at
    from evaluations
    order by model_id asc, evaluated_at desc

),

online as (

    select
        outcomes.model_id,
        count(*)::bigint as online_prediction_count,
        count(*) filter (where outcomes.label_status = 'labeled')::bigint
            as online_labeled_count,
        avg(outcomes.is_correct::integer::double precision) as online_share_correct,
        avg(outcomes.abs_error) filter (where outcomes.prediction_kind = 'regression')
            as online_mae,
        max(outcomes.created_at) as last_prediction_at
    from outcomes
    where
        outcomes.model_id is not null
        and outcomes.created_at > (select max(reference.created_at) from outcomes as reference)
        - interval '30 days'
    group by outcomes.model_id

),

ranked as (

    select
        models.*,
        models.is_active and models.deployed_at is not null as is_deployed,
        row_number() over (
            partition by models.model_name, models.is_active and models.deployed_at is not null
            order by
                coalesce(models.metadata ->> 'role' = 'champion', false) desc,
                coalesce(online.online_prediction_count, 0) desc,
                models.deployed_at desc nulls last,
                models.model_id asc
        ) as champion_rank
    from models
    left join online on models.model_id = online.model_id

),

final as (

    select
        models.model_id,
        models.model_name,
        models.version,
        registry.version_number,
        registry.aliases,
        models.model_type,
        models.framework,
        models.status,
        models.is_active,
        models.created_at,
        models.deployed_at,
        latest_training.training_loss,
        latest_training.validation_loss,
        latest_training.trained_at,
        latest_evaluation.offline_accuracy,
        latest_evaluation.offline_precision,
        latest_evaluation.offline_recall,
        latest_evaluation.offline_f1,
        latest_evaluation.evaluated_at,
        online.online_share_correct,
        online.online_mae,
        online.last_prediction_at,
        coalesce(registry_metrics.registry_metrics, '{}'::jsonb) as registry_metrics,
        case
            when bool_or(registry.is_champion) over (partition by models.model_name)
                then registry.is_champion
            else models.is_deployed and models.champion_rank = 1
        end as is_champion,
        case
            when bool_or(registry.is_champion) over (partition by models.model_name)
                then models.is_deployed and not registry.is_champion
            else models.is_deployed and models.champion_rank > 1
        end as is_challenger,
        coalesce(online.online_prediction_count, 0)::bigint as online_prediction_count,
        coalesce(online.online_labeled_count, 0)::bigint as online_labeled_count,
        online.online_share_correct - latest_evaluation.offline_accuracy as accuracy_drop
    from ranked as models
    left join latest_training on models.model_id = latest_training.model_id
    left join latest_evaluation on models.model_id = latest_evaluation.model_id
    left join online on models.model_id = online.model_id
    inner join registry on models.model_id = registry.model_id
    left join registry_metrics on models.model_id = registry_metrics.model_id

)

select * from final
