"""Every table of the source systems has a home in docs/schema.md, and the migrated schema has
it with its rules: docs/requirements.md#source-tables, docs/requirements.md#table-rules."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
import yaml

from pytests.conftest import ROOT

DOC = ROOT / "docs" / "schema.md"
REQUIREMENTS = ROOT / "docs" / "requirements.md"
SOURCES = ROOT / "models" / "staging" / "ml_raw" / "_ml_raw__sources.yml"
MIGRATED_SCHEMAS = ("ml_raw", "ml_ops", "ml_archive")

# Every table the source systems defined (docs/requirements.md, anchors source-*). The mapping
# in docs/schema.md must give each one a home; this list guards against rows being dropped.
KNOWN_SOURCE_TABLES = {
    "ml_predictions", "ml_feedback", "ml_performance_metrics", "code_roach_ml_predictions",
    "oracle_ml_predictions", "daisy_chain_ml_predictions", "first_mate_ml_predictions",
    "game_app_ml_predictions", "ml_predictions_archive", "ml_models", "training_datasets",
    "model_training_sessions", "model_evaluations", "feature_store", "evolution_experiments",
    "evolution_generations", "evolution_individuals", "code_evaluations", "llm_interactions",
    "identified_patterns", "pattern_occurrences", "predictions", "recommendations",
    "ab_testing_experiments", "learning_events", "system_performance_metrics",
    "query_performance_logs", "resource_utilization", "capacity_planning_metrics",
    "schema_migrations", "git_operation_learning_events", "user_session_learning_events",
    "data_quality_checks", "embeddings", "prediction_cache", "training_metrics",
}  # fmt: skip

NAME = r"[a-z_][a-z0-9_]*"
# the key table: "| writer | [source-prediction-writer](requirements.md#source-prediction-writer) |"
SOURCE_KEY = re.compile(
    rf"^\|\s*({NAME})\s*\|\s*\[[^\]]+\]\(requirements\.md#([a-z0-9-]+)\)\s*\|\s*$", re.M
)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def source_keys() -> dict[str, str]:
    """Key of each source system in docs/schema.md -> its anchor in docs/requirements.md."""
    return dict(SOURCE_KEY.findall(DOC.read_text()))


def mapping_rows() -> list[tuple[list[str], str, str, str]]:
    """(source keys, source table cell, lives-in cell, why cell) of docs/schema.md's mapping."""
    keys = set(source_keys())
    rows = []
    for line in DOC.read_text().splitlines():
        cells = _cells(line)
        if len(cells) != 4 or not line.lstrip().startswith("|"):
            continue
        sources = [s.strip() for s in cells[0].split(",")]
        if sources and all(s in keys for s in sources):
            rows.append((sources, cells[1], cells[2], cells[3]))
    return rows


def mapped_tables() -> set[str]:
    """The source table names of the mapping (first name in backticks of the second column)."""
    return {re.findall(rf"`({NAME})`", table)[0] for _, table, _, _ in mapping_rows()}


def doc_objects() -> set[str]:
    """Schema-qualified objects docs/schema.md names in the schemas the migrations own."""
    schemas = "|".join(MIGRATED_SCHEMAS)
    pattern = rf"`((?:{schemas})\.{NAME})`"
    return set(re.findall(pattern, DOC.read_text()))


def partitioned_sources() -> dict[str, dict]:
    spec = yaml.safe_load(SOURCES.read_text())
    out = {}
    for source in spec["sources"]:
        for table in source["tables"]:
            meta = (table.get("config") or {}).get("meta") or {}
            if "partitioning" in meta:
                out[f"{source['schema']}.{table['name']}"] = meta
    return out


def test_every_source_system_key_is_a_requirement() -> None:
    keys = source_keys()
    assert len(keys) >= 4, keys
    anchors = set(re.findall(r"^### ([a-z0-9-]+)\s*$", REQUIREMENTS.read_text(), re.M))
    assert set(keys.values()) <= anchors, set(keys.values()) - anchors


def test_every_source_table_is_mapped() -> None:
    mapped = mapped_tables()
    assert KNOWN_SOURCE_TABLES <= mapped, KNOWN_SOURCE_TABLES - mapped


def _model_exists(name: str) -> bool:
    return any(Path(ROOT, "models").rglob(f"{name}.sql"))


def test_every_mapped_table_exists_or_is_merged(conn: psycopg.Connection) -> None:
    """A home is a migrated table or a dbt model; a home of another name says why."""
    problems = []
    for sources, table_cell, home_cell, why in mapping_rows():
        table = re.findall(rf"`({NAME})`", table_cell)[0]
        homes = re.findall(r"`([a-z_][A-Za-z0-9_.<>]*)`", home_cell)
        if not homes:
            problems.append(f"{table}: no home named")
            continue
        schema, _, name = homes[0].partition(".")
        if "<" in name:  # a family of partitions: its parent must exist
            parent = re.sub(r"_p<[^>]*>$", "", name)
            exists = conn.execute(
                "select relkind = 'p' from pg_class where oid = to_regclass(%s)",
                [f"{schema}.{parent}"],
            ).fetchone()
            if exists != (True,):
                problems.append(f"{table}: partitioned parent {schema}.{parent} missing")
        elif schema in MIGRATED_SCHEMAS:
            found = conn.execute("select to_regclass(%s)", [homes[0]]).fetchone()[0]
            if found is None:
                problems.append(f"{table}: {homes[0]} not created by the migrations")
        elif schema == "ml_marts":
            if not _model_exists(name):
                problems.append(f"{table}: no dbt model {name}")
        else:
            problems.append(f"{table}: home {homes[0]} is in no known schema")
        if name != table and not why:
            problems.append(f"{table} lives in {homes[0]} without a reason ({sources})")
    assert len(mapping_rows()) >= len(KNOWN_SOURCE_TABLES)
    assert not problems, problems


def test_every_object_in_schema_doc_exists(conn: psycopg.Connection) -> None:
    objects = doc_objects()
    assert len(objects) >= 35
    absent = [
        name
        for name in sorted(objects)
        if conn.execute("select to_regclass(%s)", [name]).fetchone()[0] is None
    ]
    assert not absent, f"named in docs/schema.md but not created by the migrations: {absent}"


def test_every_ml_raw_table_is_a_dbt_source(conn: psycopg.Connection) -> None:
    declared = {
        t["name"] for s in yaml.safe_load(SOURCES.read_text())["sources"] for t in s["tables"]
    }
    tables = {
        name
        for (name,) in conn.execute(
            "select relname from pg_class where relnamespace = 'ml_raw'::regnamespace "
            "and relkind in ('r', 'p') and not relispartition"
        )
    }
    assert tables == declared


def test_partitioned_tables_have_relkind_p_default_and_key_in_pk(
    conn: psycopg.Connection,
) -> None:
    specs = partitioned_sources()
    assert len(specs) == 11
    for relation, meta in specs.items():
        column = meta["partitioning"]["column"]
        relkind = conn.execute(
            "select relkind from pg_class where oid = %s::regclass", [relation]
        ).fetchone()[0]
        assert relkind == "p", relation
        key = conn.execute("select pg_get_partkeydef(%s::regclass)", [relation]).fetchone()[0]
        assert key == f"RANGE ({column})", relation
        default = conn.execute(
            "select pg_get_expr(c.relpartbound, c.oid) from pg_class as c "
            "where c.oid = to_regclass(%s)",
            [relation + "_default"],
        ).fetchone()
        assert default == ("DEFAULT",), relation
        pk_columns = conn.execute(
            "select array_agg(a.attname::text) from pg_constraint as c "
            "join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = any(c.conkey) "
            "where c.conrelid = %s::regclass and c.contype = 'p'",
            [relation],
        ).fetchone()[0]
        assert column in pk_columns, relation


def test_core_tables_are_commented(conn: psycopg.Connection) -> None:
    for table in (
        "ml_raw.ml_predictions", "ml_raw.ml_prediction_outcomes", "ml_raw.ml_feedback",
        "ml_raw.ml_performance_metrics", "ml_raw.learning_events", "ml_ops.dead_letters",
        "ml_ops.writer_stats", "ml_ops.maintenance_runs", "ml_ops.maintenance_findings",
        "ml_ops.maintenance_size_history",
    ):  # fmt: skip
        uncommented = conn.execute(
            "select array_agg(attname::text) from pg_attribute "
            "where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "and col_description(attrelid, attnum) is null",
            [table],
        ).fetchone()[0]
        assert uncommented is None, (table, uncommented)
        assert conn.execute("select obj_description(%s::regclass)", [table]).fetchone()[0]


PREDICTION = (
    "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
    "prediction_type, predicted_value, confidence) values (gen_random_uuid(), now(), %s, %s, %s, %s)"
)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        (("code-roach", "code-quality", 0.5, 1.5), "ml_predictions_confidence_check"),
        (("code-roach", "code-quality", float("nan"), 0.5), "ml_predictions_predicted_value_check"),
        (("code-roach", "code-quality", float("inf"), 0.5), "ml_predictions_predicted_value_check"),
        (("Code Roach", "code-quality", 0.5, 0.5), "ml_predictions_service_name_check"),
        (("code-roach", "code-quality", None, 0.5), "ml_predictions_value_present_check"),
    ],
)
def test_prediction_rules_are_enforced(
    conn: psycopg.Connection, values: tuple, constraint: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        conn.execute(PREDICTION, values)


def test_a_valid_prediction_is_accepted(conn: psycopg.Connection) -> None:
    conn.execute(PREDICTION, ("code-roach", "code-quality", 0.5, 1.0))


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            "insert into ml_raw.prediction_cache (cache_key, predictions, cached_at, expires_at) "
            "values ('k', '\\x00', now(), now() - interval '1 second')",
            "prediction_cache_expires_after_cached",
        ),
        (
            "insert into ml_raw.embeddings (entity_type, entity_id, embedding, dimension) "
            "values ('user', 'u1', '{0.1,0.2,0.3}', 4)",
            "embeddings_dimension_check",
        ),
        (
            "insert into ml_raw.embeddings (entity_type, entity_id, embedding, dimension) "
            "values ('user', 'u2', '{0.1,NaN}', 2)",
            "embeddings_dimension_check",
        ),
        (
            "insert into ml_raw.ml_feedback (feedback_id, created_at, service_name, "
            "feedback_type, rating) values (gen_random_uuid(), now(), 'oracle', 'rating', 6)",
            "ml_feedback_rating_check",
        ),
    ],
)
def test_table_rules_are_enforced(conn: psycopg.Connection, statement: str, error: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match=error):
        conn.execute(statement)


def test_models_merge_and_training_metrics_are_numbers(conn: psycopg.Connection) -> None:
    model_id = conn.execute(
        "insert into ml_raw.ml_models (model_name, version, model_type, framework, "
        "hyperparameters, model_data) values ('pattern_classifier', 'v1.0', "
        "'pattern_recognition', 'scikit-learn', '{\"n_estimators\": 100}', '\\x0102') "
        "returning model_id"
    ).fetchone()[0]
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into ml_raw.ml_models (model_name, version) "
            "values ('pattern_classifier', 'v1.0')"
        )
    conn.execute(
        "insert into ml_raw.training_metrics (model_id, metrics) values (%s, %s)",
        [model_id, '{"accuracy": 0.95, "loss": 0.05}'],
    )
    with pytest.raises(psycopg.errors.CheckViolation, match="training_metrics_metrics_check"):
        conn.execute(
            "insert into ml_raw.training_metrics (model_id, metrics) values (%s, %s)",
            [model_id, '{"accuracy": "NaN"}'],
        )
