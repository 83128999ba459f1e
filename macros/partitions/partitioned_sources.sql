{#
    The partitioned landing tables and their upkeep policy, read from the `meta` of the sources
    in models/staging/ml_raw/_ml_raw__sources.yml: the one place partitioning and retention are
    declared. Each source table may carry

        config:
          meta:
            partitioning: {column: created_at, interval: day, premake: 7}
            retention: {keep: '90 days', action: archive}

    with interval `day` (partitions <table>_pYYYYMMDD) or `month` (<table>_pYYYYMM), and action
    `drop`, `archive` (attach to the partitioned ml_archive.<table> of migration 0023) or
    `aggregate` (daily aggregates into `retention.aggregate.into`, then drop; `dimensions` and
    `values` name the columns).

    Parameters: none.
    Returns: a list of dicts {schema, table, relation, default_partition, column, interval,
    premake, retention}, sorted by relation.
    Example: {% for spec in partitioned_sources() %} ... {% endfor %}
#}
{% macro partitioned_sources() %}
    {% set specs = [] %}
    {% for node in graph.sources.values() | sort(attribute='unique_id') %}
        {% set meta = node.config.meta if node.config and node.config.meta else node.meta %}
        {% set partitioning = meta.get('partitioning') if meta else none %}
        {% if partitioning and node.package_name == project_name %}
            {% set where = 'source ' ~ node.source_name ~ '.' ~ node.name %}
            {% set interval = partitioning.get('interval') %}
            {% if interval not in ('day', 'month') %}
                {% do exceptions.raise_compiler_error(
                    where ~ ': meta.partitioning.interval must be day or month, not '
                    ~ interval) %}
            {% endif %}
            {% if not partitioning.get('column') %}
                {% do exceptions.raise_compiler_error(
                    where ~ ': meta.partitioning.column is required') %}
            {% endif %}
            {% set premake = partitioning.get('premake', 7 if interval == 'day' else 2) %}
            {% if premake is not number or premake < 0 %}
                {% do exceptions.raise_compiler_error(
                    where ~ ': meta.partitioning.premake must be a number >= 0') %}
            {% endif %}
            {% set retention = meta.get('retention') %}
            {% if retention %}
                {% do ml_warehouse.validate_retention(where, retention) %}
            {% endif %}
            {% set table = node.identifier or node.name %}
            {% do specs.append({
                'schema': node.schema,
                'table': table,
                'relation': node.schema ~ '.' ~ table,
                'default_partition': table ~ '_default',
                'column': partitioning['column'],
                'interval': interval,
                'premake': premake | int,
                'retention': retention,
            }) %}
        {% endif %}
    {% endfor %}
    {{ return(specs) }}
{% endmacro %}


{#
    Fail the run with one clear line when a retention policy is incomplete.
    Parameters: where (text naming the source), retention (the meta.retention dict).
#}
{% macro validate_retention(where, retention) %}
    {% if not retention.get('keep') %}
        {% do exceptions.raise_compiler_error(
            where ~ ': meta.retention.keep is required, e.g. \'90 days\'') %}
    {% endif %}
    {% if retention.get('action') not in ('drop', 'archive', 'aggregate') %}
        {% do exceptions.raise_compiler_error(
            where ~ ': meta.retention.action must be drop, archive or aggregate, not '
            ~ retention.get('action')) %}
    {% endif %}
    {% if retention.get('action') == 'aggregate' %}
        {% set aggregate = retention.get('aggregate') or {} %}
        {% if not aggregate.get('into') or not aggregate.get('values') %}
            {% do exceptions.raise_compiler_error(
                where ~ ': action aggregate needs meta.retention.aggregate.into and .values') %}
        {% endif %}
    {% endif %}
{% endmacro %}
