{#
    Distribution drift of predicted_value and confidence per day, service and prediction type,
    against the reference window of the drift_reference_days (28) days before that day.

    All model versions pooled; mart_drift_by_version_daily measures each version against a
    fixed baseline instead (docs/requirements.md#drift). PSI, Jensen-Shannon distance and KS
    are those of the drift_measures macro; all three are null when the reference window has
    fewer than drift_min_reference_rows (100) values.

    How: each value takes part in 29 comparisons (its own day and the 28 after it), so joining
    values to days costs 29 rows per value (580M rows, tens of GB of temporary files, at 10M
    predictions). Instead int_feature_values_collected keeps each day's values once, as a sorted
    array per model version, and each (day, service, type, feature) is measured on its own
    (lateral subqueries): the reference window's values are the 28 days' arrays (index
    lookups), sorted into `ascending_values` and `negated_values` (-v ascending), and the day's
    own versions are merged into one sorted array; drift_measures then needs binary searches
    only. The counts are exact and the arithmetic is that of a row-per-value computation; the
    metrics match numpy/scipy to 1e-9 relative (pytests/test_marts.py).
    At 1M predictions this took a full refresh from over 10 minutes (and 11 GB of temporary
    files, stopped there) to about 35 seconds (bench/marts.py).

    Memoize would cache each lateral's arrays (and hash them as cache keys) for no hit: every
    (day, service, type, feature) is looked up once. The pre_hook turns it off for this
    model's transaction only.

    Incremental: a day's drift depends only on predictions created up to that day, so a run
    recomputes every day from the oldest one whose collected values changed since this mart's
    last_ingested_at (a partial newest day, or a day replayed after an outage) onwards.
#}
{{
    config(
        materialized='incremental',
        unique_key='drift_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        contract={'enforced': true},
        pre_hook="set local enable_memoize = off",
    )
}}

{%- set reference_days = var('drift_reference_days', 28) | int -%}

with

{# Two imports of one model, each used once, so PostgreSQL inlines them and the lateral
   lookup of reference days goes through the model's index. #}
current_versions as (

    select * from {{ ref('int_feature_values_collected') }}
    {% if is_incremental() %}
        where created_date >= {{ recompute_from_date(
            ref('int_feature_values_collected'), 'created_date', 'last_ingested_at'
        ) }}
    {% endif %}

),

current_values as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        last_ingested_at,
        unnest(sorted_values) as feature_value
    from current_versions

),

{# The day's values of every model version, in one sorted array. #}
current_days as (

    select
        created_date,
        service_name,
        prediction_type,
        feature_name,
        count(*) as value_count,
        {{ sorted_array_agg('feature_value') }} as sorted_values,
        max(last_ingested_at) as last_ingested_at
    from current_values
    group by created_date, service_name, prediction_type, feature_name

),

reference_days as (

    select * from {{ ref('int_feature_values_collected') }}

),

reference_windows as (

    select
        current_days.created_date as drift_date,
        current_days.service_name,
        current_days.prediction_type,
        current_days.feature_name,
        current_days.value_count as current_count,
        current_days.sorted_values as current_values,
        reference.reference_count,
        reference.ascending_values,
        reference.negated_values,
        greatest(current_days.last_ingested_at, reference.last_ingested_at) as last_ingested_at
    from current_days
    cross join
        lateral (  -- noqa: ST05
        {# sorted_array_agg sorts in memory where the server can (array_sort, 18+);
           unnest in the select list streams (in FROM it would fill a tuplestore first) #}
            select
                count(*) as reference_count,
                max(window_values.last_ingested_at) as last_ingested_at,
                {{ sorted_array_agg('window_values.feature_value') }} as ascending_values,
                {{ sorted_array_agg('-window_values.feature_value') }} as negated_values
            from (
                select
                    reference_days.last_ingested_at,
                    unnest(reference_days.sorted_values) as feature_value
                from reference_days
                where
                    reference_days.service_name = current_days.service_name
                    and reference_days.prediction_type = current_days.prediction_type
                    and reference_days.feature_name = current_days.feature_name
                    and reference_days.created_date
                    >= current_days.created_date - {{ reference_days }}
                    and reference_days.created_date < current_days.created_date
            ) as window_values
        ) as reference

),

measured as (

    {{ drift_measures('reference_windows') }}

),

final as (

    select
        {{ surrogate_key(['drift_date', 'service_name', 'prediction_type', 'feature_name']) }}
            as drift_daily_id,
        drift_date,
        service_name,
        prediction_type,
        feature_name,
        reference_count::bigint as reference_count,
        current_count::bigint as current_count,
        bin_count,
        psi,
        js_distance,
        ks_statistic,
        {{ drift_status('psi', 'current_count') }} as drift_status,
        last_ingested_at
    from measured

)

select * from final
