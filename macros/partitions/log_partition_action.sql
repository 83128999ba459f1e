{#
    Record one partition action (done or, with is_dry_run, planned) in ml_ops.partition_log,
    inside the caller's transaction. The runner reads these rows back by run_id.
    Parameters: run_id, operation ('ensure' | 'retention'), is_dry_run, parent_table,
    partition_name, action, lower and upper (SQL expressions or none), rows_affected (int or
    none), detail (dict).
#}
{% macro log_partition_action(
    run_id, operation, is_dry_run, parent_table, partition_name, action, lower, upper,
    rows_affected, detail
) %}
    {% set log_sql %}
        insert into ml_ops.partition_log (
            run_id, operation, is_dry_run, parent_table, partition_name, action,
            lower_bound, upper_bound, rows_affected, detail
        )
        values (
            {{ ml_warehouse.sql_literal(run_id) }}::uuid,
            {{ ml_warehouse.sql_literal(operation) }},
            {{ 'true' if is_dry_run else 'false' }},
            {{ ml_warehouse.sql_literal(parent_table) }},
            {{ ml_warehouse.sql_literal(partition_name) }},
            {{ ml_warehouse.sql_literal(action) }},
            {{ lower if lower is not none else 'null' }},
            {{ upper if upper is not none else 'null' }},
            {{ rows_affected if rows_affected is not none else 'null' }},
            {{ ml_warehouse.sql_literal(tojson(detail)) }}::jsonb
        )
    {% endset %}
    {% do run_query(log_sql) %}
{% endmacro %}
