"""Issue 4: every seed table has a home (docs/schema.md), and the migrated schema has it."""

from __future__ import annotations

import re

import psycopg
import pytest
import yaml

from pytests.conftest import ROOT

SEEDS = ROOT.parent / "shared" / "seeds"
DOC = ROOT / "docs" / "schema.md"
SOURCES = ROOT / "models" / "staging" / "ml_raw" / "_ml_raw__sources.yml"
MIGRATED_SCHEMAS = ("ml_raw", "ml_ops", "ml_archive")

# Names the SQL in the seeds reads from or calls that are not tables of theirs.
NOT_SEED_TABLES = {"pg_tables", "pg_stat_user_indexes", "information_schema"}

# What the extraction must find at least; guards the regexes against silently finding nothing.
KNOWN_SEED_TABLES = {
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

SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S | re.I)
SQL_TABLE = re.compile(
    r"\b(?:from|join|insert\s+into|create\s+table|update|analyze|vacuum\s+analyze)\s+"
    r"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\b(?!\s*\()",
    re.I,
)
# "- ✅ `ml_feedback` - Feedback on predictions" and "### ML Models Table (`ml_models`)"
LISTED_TABLE = re.compile(r"^\s*-\s*(?:\S+\s+)?`([a-z_][a-z0-9_]*)`\s+-\s", re.M)
HEADED_TABLE = re.compile(r"Table \(`([a-z_][a-z0-9_]*)`\)")


def seed_tables() -> dict[str, set[str]]:
    """Table name -> the seed files naming it, from their SQL and their table lists."""
    found: dict[str, set[str]] = {}
    assert SEEDS.is_dir(), f"the seed documents are expected in {SEEDS} (shared/ beside the checkout)"
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text()
        names = set(LISTED_TABLE.findall(text)) | set(HEADED_TABLE.findall(text))
        for block in SQL_BLOCK.findall(text):
            block = re.sub(r"--[^\n]*", "", block)
            names |= {n.lower() for n in SQL_TABLE.findall(block)}
        for name in names:
            if name.split(".")[0] in NOT_SEED_TABLES or name.startswith("pg_"):
                continue
            found.setdefault(name, set()).add(path.name[:3])
    return found


def doc_seed_tables() -> set[str]:
    """The names in the 'seed table' column of docs/schema.md's mapping."""
    names = set()
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d{3}(, \d{3})*", cells[0]):
            names |= set(re.findall(r"`([a-z_][a-z0-9_]*)`", cells[1]))
    return names


def doc_objects() -> set[str]:
    """Schema-qualified objects docs/schema.md names in the schemas the migrations own."""
    schemas = "|".join(MIGRATED_SCHEMAS)
    pattern = rf"`((?:{schemas})\.[a-z_][a-z0-9_]*)`"
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


def test_seed_extraction_finds_the_known_tables() -> None:
    found = seed_tables()
    assert KNOWN_SEED_TABLES <= set(found), KNOWN_SEED_TABLES - set(found)


def test_every_seed_table_appears_in_schema_doc() -> None:
    missing = {name: sorted(seeds) for name, seeds in seed_tables().items()}
    for name in doc_seed_tables():
        missing.pop(name, None)
    assert not missing, f"seed tables without a row in docs/schema.md: {missing}"


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
        "ml_ops.writer_stats",
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
def test_seed_rules_are_enforced(conn: psycopg.Connection, statement: str, error: str) -> None:
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
