{#
    on-run-start guard: stop `dbt run`/`build` at once when the database is behind migrations/.
    Parameters: none (compares ml_ops.schema_migrations with expected_migrations()).
    Example (dbt_project.yml):
        on-run-start:
          - "{{ check_migrations_applied() }}"
#}
{% macro check_migrations_applied() %}
    {% if execute %}
        {% set expected = expected_migrations() %}
        {% set bookkeeping = adapter.get_relation(
            database=target.database, schema='ml_ops', identifier='schema_migrations') %}
        {% if bookkeeping is none %}
            {{ exceptions.raise_compiler_error(
                "database " ~ target.database ~ " is not migrated (no ml_ops.schema_migrations): "
                ~ "run `mlwh migrate` first") }}
        {% endif %}
        {% set applied = run_query(
            "select version from ml_ops.schema_migrations").columns[0].values() %}
        {% set pending = [] %}
        {% for version, name in expected %}
            {% if version not in applied %}
                {% do pending.append(version ~ "_" ~ name ~ ".sql") %}
            {% endif %}
        {% endfor %}
        {% if pending %}
            {{ exceptions.raise_compiler_error(
                "database " ~ target.database ~ " is behind its migrations; pending: "
                ~ pending | join(", ") ~ ". Apply them with `mlwh migrate`.") }}
        {% endif %}
    {% endif %}
    select 1
{% endmacro %}
