{#
    Distribution drift of predicted_value and confidence per day, service, prediction type and
    model version, against a fixed baseline instead of a rolling window, so that a sustained
    shift stays visible and versions are not mixed (docs/requirements.md#drift):
    - pinned: when the drift_baseline var names the service and type, its start_date ..
      end_date (inclusive), every model version's values in that period pooled;
    - version_start: otherwise the version's own first drift_baseline_days (7) days, from the
      first day it has a value of the service and type.
    PSI, Jensen-Shannon distance and KS are those of the drift_measures macro (as in
    mart_drift_daily); they are null on the reference's own days (a day compared with itself)
    and when the reference has fewer than drift_min_reference_rows (100) values.

    Each (service, type, feature, version) reference is sorted once and shared by all its days.

    Incremental: a run recomputes the days from the oldest one whose collected values changed
    since this mart's last_ingested_at, plus every day of a version whose reference ends on or
    after it (late values inside a baseline, or a new first day, change all its rows). Changing
    drift_baseline or drift_baseline_days needs a --full-refresh of this model.
#}
{{
    config(
        materialized='incremental',
        unique_key='drift_by_version_daily_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        contract={'enforced': true},
        pre_hook="set local enable_memoize = off",
    )
}}

{%- set baseline_days = var('drift_baseline_days', 7) | int -%}
{%- set pinned = var('drift_baseline', []) -%}
{%- if baseline_days < 1 -%}
    {{ exceptions.raise_compiler_error(
        "drift_baseline_days must be 1 or more, got " ~ baseline_days
    ) }}
{%- endif -%}
{%- if is_incremental() -%}
    {%- set recompute_from = recompute_from_date(
        ref('int_feature_values_collected'), 'created_date', 'last_ingested_at'
    ) -%}
{%- endif -%}

with

{# Three imports of one model, each used once, so PostgreSQL inlines them and reads no
   array it does not need. #}
current_days as (

    select * from {{ ref('int_feature_values_collected') }}

),

reference_days as (

    select * from {{ ref('int_feature_values_collected') }}

),

version_days as (

    select
        created_date,
        service_name,
        prediction_type,
        model_version
    from {{ ref('int_feature_values_collected') }}

),

pinned_baselines as (

    {{ pinned_drift_baselines(pinned) }}

),

version_starts as (

    select
        service_name,
        prediction_type,
        model_version,
        min(created_date) as first_date
    from version_days
    group by service_name, prediction_type, model_version

),

baselines as (

    select
        version_starts.service_name,
        version_starts.prediction_type,
        version_starts.model_version,
        case
            when pinned_baselines.service_name is null then 'version_start' else 'pinned'
        end as reference_kind,
        coalesce(pinned_baselines.start_date, version_starts.first_date)
            as reference_start_date,
        coalesce(
            pinned_baselines.end_date, version_starts.first_date + {{ baseline_days - 1 }}
        ) as reference_end_date
    from version_starts
    left join pinned_baselines
        on
            version_starts.service_name = pinned_baselines.service_name
            and version_starts.prediction_type = pinned_baselines.prediction_type

),

{# A pinned period pools every version's values; a version start holds the version's own. #}
reference_values as (

    select
        baselines.service_name,
        baselines.prediction_type,
        baselines.model_version,
        reference_days.feature_name,
        reference_days.last_ingested_at,
        unnest(reference_days.sorted_values) as feature_value
    from baselines
    inner join reference_days
        on
            baselines.service_name = reference_days.service_name
            and baselines.prediction_type = reference_days.prediction_type
            and reference_days.created_date
            between baselines.reference_start_date and baselines.reference_end_date
            and (
                baselines.reference_kind = 'pinned'
                or baselines.model_version = reference_days.model_version
            )

),

reference_sets as (

    select
        service_name,
        prediction_type,
        model_version,
        feature_name,
        count(*) as reference_count,
        max(last_ingested_at) as last_ingested_at,
        {{ sorted_array_agg('feature_value') }} as ascending_values,
        {{ sorted_array_agg('-feature_value') }} as negated_values
    from reference_values
    group by service_name, prediction_type, model_version, feature_name

),

reference_windows as (

    select
        current_days.created_date as drift_date,
        current_days.service_name,
        current_days.prediction_type,
        current_days.feature_name,
        current_days.model_version,
        baselines.reference_kind,
        baselines.reference_start_date,
        baselines.reference_end_date,
        current_days.value_count as current_count,
        current_days.sorted_values as current_values,
        reference_sets.ascending_values,
        reference_sets.negated_values,
        coalesce(reference_sets.reference_count, 0) as reference_count,
        greatest(current_days.last_ingested_at, reference_sets.last_ingested_at)
            as last_ingested_at
    from current_days
    inner join baselines
        on
            current_days.service_name = baselines.service_name
            and current_days.prediction_type = baselines.prediction_type
            and current_days.model_version = baselines.model_version
    left join reference_sets
        on
            current_days.service_name = reference_sets.service_name
            and current_days.prediction_type = reference_sets.prediction_type
            and current_days.model_version = reference_sets.model_version
            and current_days.feature_name = reference_sets.feature_name
    {% if is_incremental() %}
        where
            current_days.created_date >= {{ recompute_from }}
            or baselines.reference_end_date >= {{ recompute_from }}
    {% endif %}

),

measured as (

    {{ drift_measures('reference_windows') }}

),

placed as (

    select
        *,
        drift_date between reference_start_date and reference_end_date as is_in_reference
    from measured

),

final as (

    select
        {{ surrogate_key([
            'drift_date', 'service_name', 'prediction_type', 'feature_name', 'model_version',
        ]) }} as drift_by_version_daily_id,
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        model_version,
        reference_kind,
        reference_start_date,
        reference_end_date,
        reference_count::bigint as reference_count,
        current_count::bigint as current_count,
        bin_count,
        case when not is_in_reference then psi end as psi,
        case when not is_in_reference then js_distance end as js_distance,
        case when not is_in_reference then ks_statistic end as ks_statistic,
        last_ingested_at
    from placed

)

select * from final
