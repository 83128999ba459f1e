{#
    Drift of the declared input features (seeds/prediction_features.csv) per day, service,
    prediction type and feature, all model versions pooled (docs/requirements.md#feature-drift).

    Reference, as for the output drift: the drift_reference_days (28) days before the day
    (`rolling`, as mart_drift_daily), or the period the drift_baseline var pins for the
    service and type (`pinned`, as mart_drift_by_version_daily; null metrics on its own days).
    - numeric features: PSI, Jensen-Shannon distance and KS of the drift_measures macro;
    - categorical features: PSI and Jensen-Shannon over categories, new and vanished categories
      (category_drift_measures);
    - every feature: the share of predictions without a value, the reference's share and the
      change.
    drift_status (the feature_drift_status macro) is the verdict the alerts use.

    How: each (day, service, type, feature) looks its reference days up in
    int_context_features_collected through its index (lateral subqueries), as mart_drift_daily
    does; no value is joined to the 29 days it is compared in.

    Incremental: a day's drift depends only on predictions created up to that day, so a run
    recomputes every day from the oldest one whose collected values changed since this mart's
    last_ingested_at, plus every day of a pinned service and type whose pinned period ends on
    or after it. Changing drift_baseline needs a --full-refresh of this model.
#}
{{
    config(
        materialized='incremental',
        unique_key='feature_drift_daily_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="set local enable_memoize = off",
    )
}}

{%- set reference_days = var('drift_reference_days', 28) | int -%}
{%- set pinned = var('drift_baseline', []) -%}
{%- if is_incremental() -%}
    {%- set recompute_from = recompute_from_date(
        ref('int_context_features_collected'), 'created_date', 'last_ingested_at'
    ) -%}
{%- endif -%}

with

{# Imports of one model, each used once, so PostgreSQL inlines them and the lateral lookups of
   reference days go through the model's index. #}
collected_days as (

    select * from {{ ref('int_context_features_collected') }}

),

totals_days as (

    select * from {{ ref('int_context_features_collected') }}

),

numeric_days as (

    select * from {{ ref('int_context_features_collected') }}

),

category_days as (

    select * from {{ ref('int_context_features_collected') }}

),

pinned_baselines as (

    {{ pinned_drift_baselines(pinned) }}

),

current_days as (

    select
        collected_days.*,
        case
            when pinned_baselines.service_name is null then 'rolling' else 'pinned'
        end as reference_kind,
        coalesce(
            pinned_baselines.start_date, collected_days.created_date - {{ reference_days }}
        ) as reference_start_date,
        coalesce(pinned_baselines.end_date, collected_days.created_date - 1)
            as reference_end_date
    from collected_days
    left join pinned_baselines
        on
            collected_days.service_name = pinned_baselines.service_name
            and collected_days.prediction_type = pinned_baselines.prediction_type
    {% if is_incremental() %}
        where
            collected_days.created_date >= {{ recompute_from }}
            or pinned_baselines.end_date >= {{ recompute_from }}
    {% endif %}

),

reference_windows as (

    select
        {{ surrogate_key([
            'current_days.created_date', 'current_days.service_name',
            'current_days.prediction_type', 'current_days.feature_name',
        ]) }} as feature_drift_daily_id,
        current_days.created_date as drift_date,
        current_days.service_name,
        current_days.prediction_type,
        current_days.feature_name,
        current_days.feature_kind,
        current_days.reference_kind,
        current_days.reference_start_date,
        current_days.reference_end_date,
        current_days.prediction_count,
        current_days.missing_count,
        current_days.value_count as current_count,
        current_days.sorted_values as current_values,
        current_days.categories,
        current_days.category_counts,
        numeric_reference.ascending_values,
        numeric_reference.negated_values,
        category_reference.reference_categories,
        category_reference.reference_category_counts,
        current_days.created_date
        between current_days.reference_start_date
        and current_days.reference_end_date as is_in_reference,
        coalesce(totals.reference_prediction_count, 0)::bigint as reference_prediction_count,
        coalesce(totals.reference_missing_count, 0)::bigint as reference_missing_count,
        (
            coalesce(numeric_reference.reference_count, 0)
            + coalesce(category_reference.reference_count, 0)
        )::bigint as reference_count,
        greatest(current_days.last_ingested_at, totals.last_ingested_at) as last_ingested_at
    from current_days
    cross join
        lateral (  -- noqa: ST05
            select
                sum(totals_days.prediction_count) as reference_prediction_count,
                sum(totals_days.missing_count) as reference_missing_count,
                max(totals_days.last_ingested_at) as last_ingested_at
            from totals_days
            where
                totals_days.service_name = current_days.service_name
                and totals_days.prediction_type = current_days.prediction_type
                and totals_days.feature_name = current_days.feature_name
                and totals_days.created_date
                between current_days.reference_start_date and current_days.reference_end_date
        ) as totals
    cross join
        lateral (  -- noqa: ST05
            {# unnest in the select list streams (in FROM it would fill a tuplestore first) #}
            select
                count(window_values.feature_value) as reference_count,
                {{ sorted_array_agg('window_values.feature_value') }} as ascending_values,
                {{ sorted_array_agg('-window_values.feature_value') }} as negated_values
            from (
                select unnest(numeric_days.sorted_values) as feature_value
                from numeric_days
                where
                    current_days.feature_kind = 'numeric'
                    and numeric_days.service_name = current_days.service_name
                    and numeric_days.prediction_type = current_days.prediction_type
                    and numeric_days.feature_name = current_days.feature_name
                    and numeric_days.created_date
                    between current_days.reference_start_date
                    and current_days.reference_end_date
            ) as window_values
        ) as numeric_reference
    cross join
        lateral (  -- noqa: ST05
            select
                sum(window_categories.category_count) as reference_count,
                array_agg(window_categories.category order by window_categories.category)
                    as reference_categories,
                array_agg(
                    window_categories.category_count order by window_categories.category
                )::bigint[] as reference_category_counts
            from (
                select
                    day_categories.category,
                    sum(day_categories.category_count) as category_count
                from category_days
                cross join
                    unnest(category_days.categories, category_days.category_counts)
                        as day_categories (category, category_count)
                where
                    current_days.feature_kind = 'categorical'
                    and category_days.service_name = current_days.service_name
                    and category_days.prediction_type = current_days.prediction_type
                    and category_days.feature_name = current_days.feature_name
                    and category_days.created_date
                    between current_days.reference_start_date
                    and current_days.reference_end_date
                group by day_categories.category
            ) as window_categories
        ) as category_reference

),

numeric_windows as (

    select * from reference_windows
    where feature_kind = 'numeric' and current_count > 0

),

categorical_windows as (

    select * from reference_windows
    where feature_kind = 'categorical' and current_count > 0

),

numeric_measured as (

    {{ drift_measures('numeric_windows') }}

),

categorical_measured as (

    {{ category_drift_measures('categorical_windows') }}

),

{# A feature has one kind, so at most one of the two measurements joins. #}
measured as (

    select
        reference_windows.*,
        numeric_measured.ks_statistic,
        categorical_measured.new_category_count,
        categorical_measured.vanished_category_count,
        coalesce(numeric_measured.bin_count, categorical_measured.bin_count) as bin_count,
        coalesce(numeric_measured.psi, categorical_measured.psi) as psi,
        coalesce(numeric_measured.js_distance, categorical_measured.js_distance) as js_distance
    from reference_windows
    left join numeric_measured
        on reference_windows.feature_drift_daily_id = numeric_measured.feature_drift_daily_id
    left join categorical_measured
        on reference_windows.feature_drift_daily_id = categorical_measured.feature_drift_daily_id

),

{# A pinned reference's own days are compared with themselves: no metric there. #}
final as (

    select
        measured.feature_drift_daily_id,
        measured.drift_date,
        measured.service_name,
        measured.prediction_type,
        measured.feature_name,
        measured.feature_kind,
        measured.reference_kind,
        measured.reference_start_date,
        measured.reference_end_date,
        measured.reference_prediction_count,
        measured.reference_count,
        measured.prediction_count,
        measured.current_count,
        measured.bin_count,
        case when not measured.is_in_reference then measured.psi end as psi,
        case when not measured.is_in_reference then measured.js_distance end
            as js_distance,
        case when not measured.is_in_reference then measured.ks_statistic end
            as ks_statistic,
        case when not measured.is_in_reference then measured.new_category_count end
            as new_category_count,
        case
            when not measured.is_in_reference then measured.vanished_category_count
        end as vanished_category_count,
        missing_shares.missing_share,
        missing_shares.reference_missing_share,
        missing_shares.missing_share - missing_shares.reference_missing_share
            as missing_share_change,
        {{ feature_drift_status(
            'case when not measured.is_in_reference then measured.psi end',
            'measured.current_count',
            'missing_shares.missing_share - missing_shares.reference_missing_share',
            'measured.prediction_count',
        ) }} as drift_status,
        measured.last_ingested_at
    from measured
    cross join
        lateral (  -- noqa: ST05
            select
                measured.missing_count::double precision
                / measured.prediction_count as missing_share,
                case when not measured.is_in_reference then
                    {{ safe_divide(
                        'measured.reference_missing_count',
                        'measured.reference_prediction_count'
                    ) }}
                end as reference_missing_share
        ) as missing_shares

)

select * from final
