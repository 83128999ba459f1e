{#
    The model registry as a dimension: one row per model version of ml_raw.ml_models with its
    number, artifact state and aliases (docs/requirements.md#model-registry-marts).
#}

with

models as (

    select * from {{ ref('stg_ml_raw__ml_models') }}

),

aliases as (

    select * from {{ ref('stg_ml_raw__model_aliases') }}

),

aliases_by_version as (

    select
        model_name,
        version,
        string_agg(alias, ', ' order by alias) as aliases,
        bool_or(alias = 'champion') as is_champion
    from aliases
    group by model_name, version

),

final as (

    select
        models.model_id,
        models.model_name,
        models.version,
        models.version_number,
        models.model_type,
        models.framework,
        models.status,
        models.description,
        models.created_by,
        models.size_bytes,
        models.sha256,
        models.created_at,
        models.deployed_at,
        models.deleted_at,
        models.purged_at,
        aliases_by_version.aliases,
        models.is_active,
        models.sha256 is not null and models.purged_at is null as has_artifact,
        coalesce(aliases_by_version.is_champion, false) as is_champion,
        models.is_active and models.purged_at is null and models.version_number = max(
            models.version_number
        ) filter (where models.is_active and models.purged_at is null) over (
            partition by models.model_name
        ) as is_latest
    from models
    left join aliases_by_version
        on
            models.model_name = aliases_by_version.model_name
            and models.version = aliases_by_version.version

)

select * from final
