{#
    Keep every partitioned landing table ahead of time: for each source with
    meta.partitioning (see partitioned_sources), create the partition of the current period,
    `premake` more ahead, and one for every period that has rows sitting in the DEFAULT
    partition; those rows are moved into their new partition.

    Locking: a partition is never created with `create table ... partition of` (ACCESS
    EXCLUSIVE on the parent). It is created standalone, given a CHECK constraint matching its
    bounds (so ATTACH does not scan it), filled from the default partition if needed, then
    attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, so writers keep inserting.
    It does take ACCESS EXCLUSIVE on the default partition (PostgreSQL must re-check it), which
    writers only touch for out-of-range rows. One transaction per parent table that needs a
    partition; a single read of every table's plan comes first, so that a run with nothing to
    create (every dbt run starts with one) takes no lock beyond reading.

    Every partition created (or, with dry_run, planned) is recorded in ml_ops.partition_log.

    Parameters:
        dry_run (bool): only record the plan; create nothing. Default false.
        run_id (text): uuid grouping this call's rows in ml_ops.partition_log; default the dbt
            invocation_id.
        lock_timeout (text): PostgreSQL lock_timeout for each transaction. Default '5s'.
    Example:
        dbt run-operation ensure_partitions --args '{dry_run: true}'
        on-run-start: "{{ ensure_partitions() }}"
#}
{% macro ensure_partitions(dry_run=false, run_id=none, lock_timeout='5s') %}
    {% if not execute %}
        {{ return('') }}
    {% endif %}
    {% set run_id = run_id or invocation_id %}
    {% set specs = ml_warehouse.partitioned_sources() %}
    {% if not specs %}
        {{ return('') }}
    {% endif %}
    {% set pending_sql %}
        begin;
        set local lock_timeout = {{ ml_warehouse.sql_literal(lock_timeout) }};
        {% for spec in specs %}
            select {{ loop.index0 }} as spec_index
            where exists ({{ ml_warehouse.partition_plan_sql(spec) }})
            {% if not loop.last %}union all{% endif %}
        {% endfor %}
    {% endset %}
    {% set pending = run_query(pending_sql) %}
    {% do run_query('commit') %}
    {% for row in pending.rows %}
        {% do ml_warehouse.ensure_partitions_of(
            specs[row['spec_index'] | int], dry_run, run_id, lock_timeout) %}
    {% endfor %}
    {{ return('') }}
{% endmacro %}


{#
    Plan and create the missing partitions of one table (see ensure_partitions).
    Parameters: spec (one item of partitioned_sources()), dry_run, run_id, lock_timeout.
#}
{% macro ensure_partitions_of(spec, dry_run, run_id, lock_timeout) %}
    {% set parent = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(spec.table) %}
    {% set default = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(spec.default_partition) %}
    {% set column = adapter.quote(spec.column) %}
    {% set plan_sql = ml_warehouse.partition_plan_sql(spec) %}

    {% set citus = ml_warehouse.citus_present() %}
    {% set statements = [
        'begin',
        "set local lock_timeout = '" ~ lock_timeout ~ "'",
    ] %}
    {% if citus %}
        {# a partition of a table with a foreign key to a reference table (ml_predictions to
           ml_models) is distributed over one connection per worker #}
        {% do statements.append("set local citus.multi_shard_modify_mode = 'sequential'") %}
    {% endif %}
    {% if not dry_run %}
        {# serialises concurrent upkeep of this table, and is the lock ATTACH needs anyway #}
        {% do statements.append('lock table ' ~ parent ~ ' in share update exclusive mode') %}
        {# taken first so no out-of-range row slips into the default before ATTACH checks it #}
        {% do statements.append('lock table ' ~ default ~ ' in access exclusive mode') %}
    {% endif %}
    {% do run_query(statements | join(';\n')) %}
    {% set plan = run_query(plan_sql) %}

    {% for row in plan.rows %}
        {% set partition = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(row['partition_name']) %}
        {% set lower = "'" ~ row['lower_bound'] ~ "'::timestamptz" %}
        {% set upper = "'" ~ row['upper_bound'] ~ "'::timestamptz" %}
        {% set moved = row['default_rows'] | int %}
        {% if not dry_run %}
            {% set bounds_check = adapter.quote(row['partition_name'] ~ '_bounds') %}
            {# one statement per call: Citus sends a DDL statement's text to the workers as
               it came, so a text of several statements would run them all there #}
            {% do run_query(
                'create table ' ~ partition ~ ' (like ' ~ parent
                ~ ' including defaults including constraints)') %}
            {% do run_query(
                'alter table ' ~ partition ~ ' add constraint ' ~ bounds_check ~ ' check ('
                ~ column ~ ' >= ' ~ lower ~ ' and ' ~ column ~ ' < ' ~ upper ~ ')') %}
            {% if moved > 0 %}
                {% set move_sql %}
                    with moved as (
                        delete from {{ default }}
                        where {{ column }} >= {{ lower }} and {{ column }} < {{ upper }}
                        returning *
                    )
                    insert into {{ partition }} select * from moved
                {% endset %}
                {% do run_query(move_sql) %}
            {% endif %}
            {% do run_query(
                'alter table ' ~ parent ~ ' attach partition ' ~ partition
                ~ ' for values from (' ~ lower ~ ') to (' ~ upper ~ ')') %}
            {% if citus and moved > 0 and ml_warehouse.citus_distributed(spec.relation) %}
                {# attaching distributed the partition and copied its rows to the shards; the
                   coordinator's own copy would stay, unseen and on disk #}
                {% do run_query(
                    "select truncate_local_data_after_distributing_table("
                    ~ ml_warehouse.sql_literal(spec.schema ~ '.' ~ row['partition_name'])
                    ~ "::regclass)") %}
            {% endif %}
            {% do run_query(
                'alter table ' ~ partition ~ ' drop constraint ' ~ bounds_check) %}
        {% endif %}
        {% do ml_warehouse.log_partition_action(
            run_id, 'ensure', dry_run, spec.relation, row['partition_name'], 'create',
            lower, upper, moved, {}) %}
        {% do log(
            ('would create ' if dry_run else 'created ') ~ spec.schema ~ '.'
            ~ row['partition_name'] ~ (' (' ~ moved ~ ' rows from the default partition)'
            if moved else ''), info=true) %}
    {% endfor %}
    {% do run_query('commit') %}
{% endmacro %}


{#
    The partitions one table lacks (see ensure_partitions): one row each, with its bounds and
    the rows of the default partition that belong in it, counted in one grouped read of the
    default partition (a subquery per period would be correlated, which a distributed
    warehouse refuses, docs/requirements.md#scale-out).
    Parameters: spec (one item of partitioned_sources()).
    Returns: the SQL of a query (partition_name, lower_bound, upper_bound, default_rows).
#}
{% macro partition_plan_sql(spec) %}
    {% set default = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(spec.default_partition) %}
    {% set column = adapter.quote(spec.column) %}
    {% set step = "interval '1 " ~ spec.interval ~ "'" %}
    {% set suffix_format = 'YYYYMMDD' if spec.interval == 'day' else 'YYYYMM' %}
    {% set plan_sql %}
        with default_periods as (
            select
                date_trunc('{{ spec.interval }}', {{ column }} at time zone 'UTC') as lower_utc,
                count(*) as default_rows
            from {{ default }}
            group by 1
        ),

        wanted as (
            select
                generate_series(
                    date_trunc('{{ spec.interval }}', now() at time zone 'UTC'),
                    date_trunc('{{ spec.interval }}', now() at time zone 'UTC')
                    + {{ spec.premake }} * {{ step }},
                    {{ step }}
                ) as lower_utc
            union
            select lower_utc from default_periods
        ),

        planned as (
            select
                lower_utc,
                lower_utc at time zone 'UTC' as lower_bound,
                (lower_utc + {{ step }}) at time zone 'UTC' as upper_bound,
                '{{ spec.table }}_p' || to_char(lower_utc, '{{ suffix_format }}')
                    as partition_name
            from wanted
        )

        select
            planned.partition_name,
            to_char(planned.lower_bound at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                as lower_bound,
            to_char(planned.upper_bound at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                as upper_bound,
            coalesce(default_periods.default_rows, 0) as default_rows
        from planned
        left join default_periods on planned.lower_utc = default_periods.lower_utc
        where to_regclass(
            quote_ident('{{ spec.schema }}') || '.' || quote_ident(planned.partition_name)
        ) is null
        order by planned.lower_bound
    {% endset %}
    {{ return(plan_sql) }}
{% endmacro %}
