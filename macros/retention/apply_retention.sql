{#
    Retire expired partitions as declared in the sources' meta.retention (see
    partitioned_sources): a partition has expired when its upper bound is at or before
    now() - keep. Whole partitions only, never a DELETE: each is detached, then
      drop       dropped;
      archive    moved to schema ml_archive under its own name and attached, with the same
                 bounds, to the parent ml_archive.<table> (migration 0023), so the archive
                 stays one queryable table per source (docs/requirements.md#archive). When
                 that parent already has the partition (rows written late for an archived
                 period), the rows are added to it and the detached partition is dropped;
      aggregate  summarised per UTC day into meta.retention.aggregate.into (row count and the
                 sum, min and max of each `values` column, grouped by `dimensions`), then
                 dropped, in the same transaction.
    Default partitions are never touched.

    Locking: plain DETACH PARTITION (ACCESS EXCLUSIVE on the parent, held for the few
    milliseconds the catalog changes take; lock_timeout makes it give up rather than queue
    behind long queries). DETACH ... CONCURRENTLY is not an option: PostgreSQL refuses it when
    the table has a default partition, and every landing table has one. One transaction per
    parent table, so a failure leaves that table as it was. Before that transaction, a
    partition to archive gets a CHECK constraint equal to its bounds, added NOT VALID and then
    validated (SHARE UPDATE EXCLUSIVE on that partition only: reads and writes go on), so that
    ATTACH inside the transaction need not scan it; the constraint is dropped once attached.

    Every partition retired (or, with dry_run, that would be) is recorded in
    ml_ops.partition_log.

    Parameters:
        dry_run (bool): only record the plan; change nothing. Default TRUE.
        run_id (text): uuid grouping this call's rows in ml_ops.partition_log; default the dbt
            invocation_id.
        lock_timeout (text): PostgreSQL lock_timeout for each transaction. Default '5s'.
    Example:
        dbt run-operation apply_retention                        # dry run
        dbt run-operation apply_retention --args '{dry_run: false}'
#}
{% macro apply_retention(dry_run=true, run_id=none, lock_timeout='5s') %}
    {% if not execute %}
        {{ return('') }}
    {% endif %}
    {% set run_id = run_id or invocation_id %}
    {% for spec in ml_warehouse.partitioned_sources() if spec.retention %}
        {% do ml_warehouse.apply_retention_to(spec, dry_run, run_id, lock_timeout) %}
    {% endfor %}
    {{ return('') }}
{% endmacro %}


{#
    Retire the expired partitions of one table (see apply_retention).
    Parameters: spec (one item of partitioned_sources() with a retention), dry_run, run_id,
    lock_timeout.
#}
{% macro apply_retention_to(spec, dry_run, run_id, lock_timeout) %}
    {% set parent = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(spec.table) %}
    {% set retention = spec.retention %}
    {% set action = retention.action %}

    {% set plan_sql %}
        with partitions as (
            select
                child.relname as partition_name,
                coalesce(
                    shard_rows.estimated_rows, greatest(child.reltuples, 0)
                )::bigint as estimated_rows,
                coalesce(shard_rows.is_analyzed, child.reltuples >= 0) as is_analyzed,
                regexp_match(
                    pg_get_expr(child.relpartbound, child.oid),
                    'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)'
                ) as bounds
            from pg_inherits as inh
            inner join pg_class as child on inh.inhrelid = child.oid
            left join ({{ ml_warehouse.citus_row_estimates() }}) as shard_rows
                on child.oid = shard_rows.relation_oid
            where inh.inhparent = {{ ml_warehouse.sql_literal(parent) }}::regclass
        ),

        dated as (
            select
                partition_name,
                estimated_rows,
                is_analyzed,
                bounds[1]::timestamptz as lower_bound,
                bounds[2]::timestamptz as upper_bound
            from partitions
            where bounds is not null
        )

        select
            partition_name,
            to_char(lower_bound at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as lower_bound,
            to_char(upper_bound at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as upper_bound,
            estimated_rows,
            is_analyzed,
            to_regclass('ml_archive.' || quote_ident(partition_name)) is not null
                as is_in_archive
        from dated
        where upper_bound <= now() - {{ ml_warehouse.sql_literal(retention.keep) }}::interval
        order by lower_bound
    {% endset %}

    {% set begin = "begin;\nset local lock_timeout = " ~ ml_warehouse.sql_literal(lock_timeout) %}
    {% set archive_parent = 'ml_archive.' ~ adapter.quote(spec.table) %}
    {% if action == 'archive' %}
        {% do ml_warehouse.require_archive_parent(spec) %}
        {% if not dry_run %}
            {% for row in run_query(plan_sql).rows if not row['is_in_archive'] %}
                {% do ml_warehouse.add_archive_bounds(spec, row, begin) %}
            {% endfor %}
        {% endif %}
    {% endif %}

    {% do run_query(begin) %}
    {% set plan = run_query(plan_sql) %}

    {% for row in plan.rows %}
        {% set partition = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(row['partition_name']) %}
        {% set archived = 'ml_archive.' ~ adapter.quote(row['partition_name']) %}
        {% set lower = "'" ~ row['lower_bound'] ~ "'::timestamptz" %}
        {% set upper = "'" ~ row['upper_bound'] ~ "'::timestamptz" %}
        {% set rows_affected = row['estimated_rows'] | int %}
        {% set detail = {'rows_estimated': true} %}
        {% if not row['is_analyzed'] and action != 'aggregate' %}
            {# never analyzed (rows `partitions ensure` just moved in, say): its estimate is
               unknown, not 0, so count it; on Citus the count runs on the shards #}
            {% set rows_affected = run_query(
                'select count(*) as n from ' ~ partition).rows[0]['n'] | int %}
            {% do detail.update({'rows_estimated': false}) %}
        {% endif %}
        {% if action == 'archive' %}
            {% do detail.update({'archived_as': 'ml_archive.' ~ row['partition_name']}) %}
            {% if row['is_in_archive'] %}
                {% do detail.update({'merged': true}) %}
            {% endif %}
        {% elif action == 'aggregate' %}
            {% do detail.update({'rows_estimated': false, 'into': retention.aggregate.into}) %}
        {% endif %}

        {% if not dry_run %}
            {% do run_query('alter table ' ~ parent ~ ' detach partition ' ~ partition) %}
            {% if action == 'drop' %}
                {% do run_query('drop table ' ~ partition) %}
            {% elif action == 'archive' and row['is_in_archive'] %}
                {# rows that reached the raw table after their period was archived #}
                {% set merge_sql %}
                    with moved as (
                        insert into {{ archived }}
                        select * from {{ partition }}
                        returning 1
                    )

                    select count(*) as n from moved
                {% endset %}
                {% set rows_affected = run_query(merge_sql).rows[0]['n'] | int %}
                {% do detail.update({'rows_estimated': false}) %}
                {% do run_query('drop table ' ~ partition) %}
            {% elif action == 'archive' %}
                {% set bounds_check = adapter.quote(row['partition_name'] ~ '_archive_bounds') %}
                {# one statement per call: on a distributed warehouse Citus sends a DDL
                   statement's text to the workers as it came (docs/requirements.md#scale-out) #}
                {% do run_query('alter table ' ~ partition ~ ' set schema ml_archive') %}
                {% do run_query(
                    'alter table ' ~ archive_parent ~ ' attach partition ' ~ archived
                    ~ ' for values from (' ~ lower ~ ') to (' ~ upper ~ ')') %}
                {% do run_query(
                    'alter table ' ~ archived ~ ' drop constraint if exists ' ~ bounds_check) %}
            {% else %}
                {% set summary = run_query(
                    ml_warehouse.retention_aggregate_sql(spec, partition)) %}
                {% set rows_affected = summary.rows[0]['source_rows'] | int %}
                {% do detail.update({'aggregate_rows': summary.rows[0]['aggregate_rows'] | int}) %}
                {% do run_query('drop table ' ~ partition) %}
            {% endif %}
        {% elif action == 'aggregate' %}
            {% set rows_affected = run_query(
                'select count(*) as n from ' ~ partition).rows[0]['n'] | int %}
        {% endif %}

        {% do ml_warehouse.log_partition_action(
            run_id, 'retention', dry_run, spec.relation, row['partition_name'], action,
            lower, upper, rows_affected, detail) %}
        {% do log(
            ('would ' if dry_run else '') ~ action ~ ' ' ~ spec.schema ~ '.'
            ~ row['partition_name'] ~ ' (' ~ row['lower_bound'] ~ ' .. ' ~ row['upper_bound']
            ~ ')', info=true) %}
    {% endfor %}
    {% do run_query('commit') %}
{% endmacro %}


{#
    Fail with one clear line when the archive parent of a source with action archive is
    missing (it comes from a migration, like the raw table), before anything is detached.
    Parameters: spec (with retention.action = 'archive').
#}
{% macro require_archive_parent(spec) %}
    {% set found_sql %}
        select count(*) as n
        from pg_partitioned_table
        where partrelid = to_regclass({{ ml_warehouse.sql_literal(
            'ml_archive.' ~ adapter.quote(spec.table)) }})
    {% endset %}
    {% if (run_query(found_sql).rows[0]['n'] | int) == 0 %}
        {% do exceptions.raise_compiler_error(
            'source ' ~ spec.relation ~ ' has retention action archive, but the partitioned '
            ~ 'table ml_archive.' ~ spec.table ~ ' does not exist: run `mlwh migrate`, or add a '
            ~ 'migration creating it like ml_raw.' ~ spec.table) %}
    {% endif %}
{% endmacro %}


{#
    Give one expired partition a validated CHECK constraint equal to its bounds, in two short
    transactions of its own (see apply_retention), so that attaching it to its archive parent
    reads nothing. Repeatable: a constraint left by an interrupted run is replaced.
    Parameters: spec, row (a row of apply_retention_to's plan), begin (the statements opening
    a transaction with lock_timeout set).
#}
{% macro add_archive_bounds(spec, row, begin) %}
    {% set partition = adapter.quote(spec.schema) ~ '.' ~ adapter.quote(row['partition_name']) %}
    {% set bounds_check = adapter.quote(row['partition_name'] ~ '_archive_bounds') %}
    {% set column = adapter.quote(spec.column) %}
    {% set add_sql %}
        alter table {{ partition }}
            add constraint {{ bounds_check }} check (
                {{ column }} >= '{{ row['lower_bound'] }}'::timestamptz
                and {{ column }} < '{{ row['upper_bound'] }}'::timestamptz
            ) not valid
    {% endset %}
    {# one DDL statement per call and one subcommand per ALTER, as in apply_retention_to:
       Citus refuses ADD CONSTRAINT beside another subcommand #}
    {% do run_query(begin) %}
    {% do run_query('alter table ' ~ partition ~ ' drop constraint if exists ' ~ bounds_check) %}
    {% do run_query(add_sql) %}
    {% do run_query('commit') %}
    {% do run_query(begin) %}
    {% do run_query('alter table ' ~ partition ~ ' validate constraint ' ~ bounds_check) %}
    {% do run_query('commit') %}
{% endmacro %}


{#
    The statement that writes the daily aggregates of one detached partition into
    meta.retention.aggregate.into and returns how many source rows and aggregate rows it
    covered.
    Parameters: spec (with retention.action = 'aggregate'), partition (quoted relation name).
#}
{% macro retention_aggregate_sql(spec, partition) %}
    {% set aggregate = spec.retention.aggregate %}
    {% set date_column = aggregate.get('date_column', spec.column ~ '_date') %}
    {% set dimensions = aggregate.get('dimensions', []) %}
    {% set target_columns = [date_column] + dimensions + ['row_count'] %}
    {% set select_exprs = [
        '(' ~ adapter.quote(spec.column) ~ " at time zone 'UTC')::date"
    ] %}
    {% for dimension in dimensions %}
        {% do select_exprs.append(adapter.quote(dimension)) %}
    {% endfor %}
    {% do select_exprs.append('count(*)') %}
    {% for value in aggregate['values'] %}
        {% for fn in ['sum', 'min', 'max'] %}
            {% do target_columns.append(value ~ '_' ~ fn) %}
            {% do select_exprs.append(fn ~ '(' ~ adapter.quote(value) ~ ')') %}
        {% endfor %}
    {% endfor %}
    {% set into_parts = aggregate.into.split('.') %}
    {% set into = adapter.quote(into_parts[0]) ~ '.' ~ adapter.quote(into_parts[1]) %}
    {% set group_by = range(1, dimensions | length + 2) | join(', ') %}
    {% set sql %}
        with inserted as (
            insert into {{ into }} (
                {%- for column in target_columns %}
                {{ adapter.quote(column) }}{{ ',' if not loop.last }}
                {%- endfor %}
            )
            select
                {%- for expr in select_exprs %}
                {{ expr }}{{ ',' if not loop.last }}
                {%- endfor %}
            from {{ partition }}
            group by {{ group_by }}
            returning row_count
        )

        select
            coalesce(sum(row_count), 0) as source_rows,
            count(*) as aggregate_rows
        from inserted
    {% endset %}
    {{ return(sql) }}
{% endmacro %}
