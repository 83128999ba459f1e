"""The model repository (docs/requirements.md#model-repository-api and the model-* entries):
artifacts round-trip with their checksum, versions, aliases, soft deletion and cleanup,
embeddings searched like numpy does, the cache's TTL, training metrics and the async API.

Every repository here connects as mlwh_models through the embedded server's own login for it,
never as the superuser: the tests prove the role's privileges are enough, and no more.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import pickle
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from psycopg import errors

from pytests.conftest import mlwh_env, run_mlwh
from runner import db
from runner.errors import DatabaseUnavailable
from runner.models import (
    AliasConflict,
    ArtifactUnavailable,
    AsyncModelRepository,
    ChecksumMismatch,
    ConfigError,
    EmbeddingNotFound,
    InvalidEmbedding,
    InvalidValue,
    ModelNotFound,
    ModelRepository,
    RepositoryConfig,
    UnsafeArtifact,
    VersionExists,
)

SMALL_POOL = RepositoryConfig(pool_size=1, max_overflow=3, cache_default_ttl=60, cache_max_ttl=600)


@pytest.fixture(scope="module")
def models_info(module_db: db.ConnInfo, pg_server: db.EmbeddedServer) -> db.ConnInfo:
    info = db.as_role(module_db, db.MODELS, pg_server)
    assert info.user == "mlwh_app_models"
    with db.connect(info) as conn:
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (False,)
        assert conn.execute("select current_user").fetchone()[0] == db.MODELS
    return info


@pytest.fixture(scope="module")
def repo(models_info: db.ConnInfo) -> Iterator[ModelRepository]:
    with ModelRepository(models_info, config=SMALL_POOL) as repository:
        yield repository


def _save_many(info: db.ConnInfo, name: str, count: int) -> list[int]:
    """One process's share of the concurrent saves (run in a child process)."""
    with ModelRepository(info, config=SMALL_POOL) as repository:
        return [repository.save_model(name, f"{name}-{i}".encode())["version_number"]
                for i in range(count)]  # fmt: skip


def test_a_model_round_trips_byte_for_byte_with_its_checksum(
    repo: ModelRepository, tmp_path: Path
) -> None:
    artifact = np.random.default_rng(4).bytes(1_000_003)
    saved = repo.save_model("roundtrip", artifact, "1.0", {"owner": "ml-team"})
    assert saved["sha256"] == hashlib.sha256(artifact).hexdigest()
    assert saved["size_bytes"] == len(artifact) and saved["version_number"] == 1
    assert repo.load_model("roundtrip", "1.0") == artifact
    assert repo.load_model("roundtrip", "latest") == artifact

    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07onnx-bytes")
    assert repo.save_model("roundtrip", path)["version"] == "2"  # the next number
    assert repo.load_model("roundtrip", 2) == path.read_bytes()
    assert repo.get_model_version("roundtrip", 2)["metadata"]["artifact"]["source_file"] == "model.onnx"

    # an object is pickled on save; loading it back needs the caller's consent
    model = {"weights": np.arange(6.0).reshape(2, 3), "intercept": 0.5}
    repo.save_model("roundtrip", model, "pickled")
    with pytest.raises(UnsafeArtifact, match="unpickling runs"):
        repo.load_model("roundtrip", "pickled")
    loaded = repo.load_model("roundtrip", "pickled", allow_pickle=True)
    assert np.array_equal(loaded["weights"], model["weights"])
    assert repo.load_model("roundtrip", "pickled", raw=True) == pickle.dumps(model, protocol=5)
    with pytest.raises(InvalidValue, match="no such file"):
        repo.save_model("roundtrip", str(tmp_path / "missing.bin"))


def test_a_fitted_scikit_learn_estimator_round_trips_byte_for_byte(repo: ModelRepository) -> None:
    # docs/requirements.md#model-artifact-integrity: a real model, as the registry's users save it
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    features, labels = make_classification(n_samples=300, n_features=8, random_state=0)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(features, labels)
    artifact = pickle.dumps(estimator, protocol=5)
    saved = repo.save_model("sklearn_forest", artifact, metadata={"features": 8},
                            framework="scikit-learn", model_type="classifier")  # fmt: skip
    assert saved["sha256"] == hashlib.sha256(artifact).hexdigest()
    assert repo.load_model("sklearn_forest", "latest") == artifact  # bytes in, the same bytes out
    repo.save_model("sklearn_forest", estimator)  # the object itself: pickled by the repository
    with pytest.raises(UnsafeArtifact, match="unpickling runs"):
        repo.load_model("sklearn_forest", 2)
    loaded = repo.load_model("sklearn_forest", 2, allow_pickle=True)
    assert type(loaded) is RandomForestClassifier
    assert np.array_equal(loaded.predict_proba(features), estimator.predict_proba(features))
    assert repo.load_model("sklearn_forest", 2, raw=True) == artifact


def test_a_tampered_artifact_fails_its_checksum(
    repo: ModelRepository, module_db: db.ConnInfo, models_info: db.ConnInfo
) -> None:
    repo.save_model("tampered", b"0123456789abcdef" * 100, "v1")
    with db.connect(module_db, autocommit=True) as admin:  # flip one byte behind its back
        admin.execute(
            "update ml_raw.ml_models set model_data = set_byte(model_data, 10, "
            "get_byte(model_data, 10) # 255) where model_name = 'tampered'"
        )
    with pytest.raises(ChecksumMismatch, match="'tampered' version 'v1'.*fails its checksum"):
        repo.load_model("tampered", "v1")
    # bytes damaged on their way in are refused at insert, by the table's trigger
    with db.connect(models_info, autocommit=True) as conn, pytest.raises(errors.DataCorrupted):
        conn.execute(
            "insert into ml_raw.ml_models (model_name, model_data, sha256) values ('tampered', "
            "'abc', %s)",
            [hashlib.sha256(b"abd").hexdigest()],
        )


def test_versions_latest_aliases_and_unknown_names(repo: ModelRepository) -> None:
    for i in range(3):
        repo.save_model("ranker", f"ranker-{i}".encode())
    assert [v["version"] for v in repo.get_model_versions("ranker")] == ["1", "2", "3"]
    assert repo.load_model("ranker") == b"ranker-2"
    repo.set_alias("ranker", "champion", "2")
    repo.set_alias("ranker", "challenger", "latest")
    assert repo.load_model("ranker", "champion") == b"ranker-1"
    assert repo.load_model("ranker", "@challenger") == b"ranker-2"
    assert repo.get_aliases("ranker") == {"champion": "2", "challenger": "3"}
    repo.save_training_metrics("ranker", "champion", {"auc": 0.91})
    versions = {v["version"]: v for v in repo.get_model_versions("ranker")}
    assert versions["2"]["aliases"] == ["champion"] and versions["2"]["metrics"] == {"auc": 0.91}

    with pytest.raises(ModelNotFound, match="unknown model 'rankr'"):
        repo.load_model("rankr")
    with pytest.raises(ModelNotFound, match=r"no version or alias '9'.*1, 2, 3.*champion"):
        repo.load_model("ranker", "9")
    with pytest.raises(VersionExists, match="already has version '2'"):
        repo.save_model("ranker", b"again", "2")
    with pytest.raises(AliasConflict, match="champion"):
        repo.delete_model("ranker", "2")
    with pytest.raises(InvalidValue, match="alias"):
        repo.set_alias("ranker", "Latest Model", "1")


def test_soft_delete_hides_a_version_until_it_is_restored(repo: ModelRepository) -> None:
    for i in range(2):
        repo.save_model("soft", f"soft-{i}".encode())
    assert repo.delete_model("soft", "latest") is True
    assert repo.load_model("soft") == b"soft-0"  # latest live version
    assert [v["version"] for v in repo.get_model_versions("soft")] == ["1"]
    deleted = repo.get_model_versions("soft", include_deleted=True)[1]
    assert not deleted["is_active"] and deleted["deleted_at"] is not None
    with pytest.raises(ArtifactUnavailable, match="is deleted"):
        repo.load_model("soft", "2")
    with pytest.raises(AliasConflict, match="live version"):
        repo.set_alias("soft", "champion", "2")
    repo.restore_model("soft", "2")
    assert repo.load_model("soft") == b"soft-1"


def test_cleanup_keeps_the_newest_versions_and_every_aliased_one(repo: ModelRepository) -> None:
    for i in range(12):
        repo.save_model("cleanup", f"cleanup-{i + 1}".encode())
    repo.set_alias("cleanup", "champion", 2)
    repo.delete_model("cleanup", 12)  # soft-deleted: not among the kept
    assert repo.cleanup_old_models("cleanup", keep_versions=5) == 12 - 5 - 1
    live = {v["version_number"] for v in repo.get_model_versions("cleanup")}
    assert live == {2, 7, 8, 9, 10, 11}
    assert repo.load_model("cleanup", "champion") == b"cleanup-2"
    with pytest.raises(ArtifactUnavailable, match="removed by cleanup_old_models"):
        repo.load_model("cleanup", 3)
    with pytest.raises(ArtifactUnavailable, match="cannot be restored"):
        repo.restore_model("cleanup", 12)
    assert repo.cleanup_old_models("cleanup", keep_versions=5) == 0  # idempotent
    stats = {m["model_name"]: m for m in repo.get_model_storage_stats()["models"]}["cleanup"]
    assert (stats["versions"], stats["live_versions"], stats["purged_versions"]) == (12, 6, 6)
    with pytest.raises(ModelNotFound, match="unknown model"):
        repo.cleanup_old_models("nothing-here")


def test_two_processes_saving_at_once_get_unique_gap_free_versions(
    repo: ModelRepository, models_info: db.ConnInfo
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        shares = list(pool.map(_save_many, [models_info] * 2, ["concurrent"] * 2, [50, 50]))
    numbers = sorted(n for share in shares for n in share)
    assert numbers == list(range(1, 101))
    assert len(repo.get_model_versions("concurrent")) == 100


def test_nearest_neighbours_agree_with_numpy(repo: ModelRepository, models_info: db.ConnInfo) -> None:
    rng = np.random.default_rng(7)
    points = rng.normal(size=(1500, 16))
    assert repo.batch_save_embeddings(
        [("doc", f"d{i}", p) for i, p in enumerate(points)]
    ) == len(points)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    queries = rng.normal(size=(10, 16))
    with ModelRepository(models_info, config=SMALL_POOL, use_pgvector=False) as plain:
        recall = []
        for q in queries:
            distances = 1 - unit @ (q / np.linalg.norm(q))
            order = np.argsort(distances, kind="stable")[:10]
            truth = [f"d{i}" for i in order]
            exact = repo.search_embeddings("doc", q, 10, exact=True)
            assert [e for e, _ in exact] == truth
            assert np.allclose([d for _, d in exact], distances[order], atol=1e-6)
            assert [e for e, _ in plain.search_embeddings("doc", q, 10)] == truth
            found = {e for e, _ in repo.search_embeddings("doc", q, 10)}  # HNSW
            recall.append(len(found & set(truth)) / 10)
    assert np.mean(recall) >= 0.95
    assert repo.get_embeddings_stats()["entity_types"][0]["has_hnsw_index"]


def test_embeddings_are_saved_read_and_refused_naming_the_problem(repo: ModelRepository) -> None:
    assert repo.save_embeddings("user", "u1", np.array([0.1, 0.2, 0.3]))
    repo.save_embeddings("user", "u1", [0.3, 0.2, 0.1])  # replaced
    repo.save_embeddings("user", "u2", [1, 0, 0])
    assert repo.get_embeddings("user", "u1").tolist() == [0.3, 0.2, 0.1]
    assert set(repo.get_all_embeddings("user")) == {"u1", "u2"}
    for bad, message in (
        ([0.1, float("nan"), 0.3], "user/u3: contains NaN at index 1"),
        ([], "user/u3: is empty"),
        ([0.0, 0.0, 0.0], "all zeros"),
        ([[0.1, 0.2, 0.3]], "one-dimensional"),
        ([0.1, 0.2], "user/u3 has 2 dimensions; entity type user has 3"),
    ):
        with pytest.raises(InvalidEmbedding, match=message):
            repo.save_embeddings("user", "u3", bad)
    with pytest.raises(InvalidEmbedding, match=r"item 1 \(user/u5\): contains inf"):
        repo.batch_save_embeddings([("user", "u4", [1, 2, 3]), ("user", "u5", [1, np.inf, 3])])
    with pytest.raises(EmbeddingNotFound, match="u4"):
        repo.get_embeddings("user", "u4")  # the batch saved nothing
    with pytest.raises(InvalidEmbedding, match="query for user: has 2 dimensions"):
        repo.search_embeddings("user", [1, 2], 1)
    with pytest.raises(EmbeddingNotFound, match="'nobody'"):
        repo.get_all_embeddings("nobody")


def test_the_cache_never_returns_an_expired_entry(repo: ModelRepository, module_db: db.ConnInfo) -> None:
    predictions = {"recommendations": [1, 2, 3], "scores": np.array([0.9, 0.8, 0.7])}
    repo.cache_predictions("user1_recs", predictions, ttl_seconds=0.5)
    repo.cache_predictions("user2_recs", b"\x00raw", ttl_seconds=60)
    repo.cache_predictions("user1_other", [1], ttl_seconds=60)
    assert repo.get_cached_predictions("user1_recs") == {
        "recommendations": [1, 2, 3], "scores": [0.9, 0.8, 0.7]}  # fmt: skip
    assert repo.get_cached_predictions("user2_recs") == b"\x00raw"
    assert repo.get_cached_predictions("missing") is None
    time.sleep(0.6)
    assert repo.get_cached_predictions("user1_recs") is None  # expired, still in the table
    stats = repo.get_cache_statistics()
    assert (stats["entries"], stats["expired_entries"], stats["hits"], stats["misses"]) == (3, 1, 2, 2)
    assert stats["hit_rate"] == 0.5 and stats["expired_share"] == round(1 / 3, 4)
    with db.connect(module_db) as admin:
        assert admin.execute(
            "select access_count, last_accessed_at is not null from ml_raw.prediction_cache "
            "where cache_key = 'user2_recs'"
        ).fetchone() == (1, True)
    assert repo.purge_expired_cache() == 1
    assert repo.clear_cache("user1_*") == 1  # user1_other; `_` is literal, not a wildcard
    with pytest.raises(InvalidValue, match="CACHE_MAX_TTL"):
        repo.cache_predictions("long", [1], ttl_seconds=601)
    assert repo.clear_cache("*") == 1


def test_training_metrics_are_a_series_of_finite_numbers(repo: ModelRepository) -> None:
    repo.save_model("trainer", b"weights")
    for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        repo.save_training_metrics("trainer", "1", {"loss": loss, "acc": 1 - loss}, epoch=epoch)
    repo.save_training_metrics("trainer", "1", {"test_acc": 0.68})
    history = repo.get_training_history("trainer", "1", metric="loss")
    assert [(h["epoch"], h["metrics"]["loss"]) for h in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert repo.get_training_metrics("trainer", "latest") == {"loss": 0.3, "acc": 0.7, "test_acc": 0.68}
    for bad in ({"loss": float("nan")}, {"loss": "low"}, {}):
        with pytest.raises(InvalidValue):
            repo.save_training_metrics("trainer", "1", bad)
    with pytest.raises(ModelNotFound, match="'trainer' has no version or alias '7'"):
        repo.save_training_metrics("trainer", "7", {"loss": 1.0})


def test_the_async_api_works_under_asyncio(models_info: db.ConnInfo) -> None:
    async def main() -> tuple[list[dict], bytes, object, dict]:
        async with AsyncModelRepository(models_info, config=SMALL_POOL) as repo:
            saved = await asyncio.gather(
                *(repo.save_model("async_model", f"a{i}".encode()) for i in range(5))
            )
            latest = await repo.load_model("async_model", "latest")
            await repo.cache_predictions("async_key", {"p": 1}, ttl_seconds=30)
            cached = await repo.get_cached_predictions("async_key")
            return saved, latest, cached, await repo.health_check()

    saved, latest, cached, health = asyncio.run(main())
    assert sorted(s["version_number"] for s in saved) == [1, 2, 3, 4, 5]
    assert latest == f"a{[s['version_number'] for s in saved].index(5)}".encode()
    assert cached == {"p": 1}
    assert health["status"] == "healthy" and health["checks"]["database"]["role"] == db.MODELS


def test_the_role_may_use_the_model_tables_and_nothing_else(models_info: db.ConnInfo) -> None:
    denied = (
        "select * from ml_raw.ml_predictions limit 1",
        "delete from ml_raw.ml_models",
        "update ml_raw.ml_models set sha256 = null",
        "truncate ml_raw.prediction_cache",
        "drop table ml_raw.embeddings",
        "create table ml_raw.mine (x int)",
        "insert into ml_raw.embedding_types (entity_type, dimension) values ('x', 1)",
        "select * from ml_raw.model_version_counters",
        "select * from ml_ops.dead_letters limit 1",
    )
    with db.connect(models_info, autocommit=True) as conn:
        for statement in denied:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_health_stats_and_optimize_report_what_they_did(repo: ModelRepository) -> None:
    health = repo.health_check()
    assert health["status"] == "healthy" and health["checks"]["pgvector"]["installed"]
    stats = repo.stats()
    assert stats["models"]["total_versions"] > 0
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(stats["operations"]["save_model"])
    timings = repo.get_performance_metrics()
    assert timings and all(t.execution_time > 0 and t.query_type for t in timings)
    done = repo.optimize_database()
    assert len(done["vacuumed"]) + len(done["skipped"]) == 5


def test_bad_settings_name_their_variable() -> None:
    assert RepositoryConfig.from_env({"DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "0"}).max_size == 3
    for env, message in (
        ({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE must be a whole number, got 'many'"),
        ({"CACHE_DEFAULT_TTL": "90000"}, r"CACHE_DEFAULT_TTL \(90000\) is above CACHE_MAX_TTL"),
        ({"DB_POOL_TIMEOUT": "0"}, "DB_POOL_TIMEOUT must be more than 0"),
        ({"ENABLE_METRICS": "maybe"}, "ENABLE_METRICS must be true or false"),
        ({"HNSW_EF_SEARCH": "5000"}, "HNSW_EF_SEARCH must be from 1 to 1000, got 5000"),
        ({"CACHE_HITS_FLUSH_SECONDS": "0"}, "CACHE_HITS_FLUSH_SECONDS must be more than 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            RepositoryConfig.from_env(env)


def test_unmigrated_database_is_named(empty_db: db.ConnInfo) -> None:
    with pytest.raises(DatabaseUnavailable, match="not migrated: run `mlwh migrate`"):
        ModelRepository(empty_db, config=SMALL_POOL)



def test_a_cache_get_is_a_read_and_hits_are_counted_in_batches(
    models_info: db.ConnInfo, module_db: db.ConnInfo
) -> None:
    # docs/requirements.md#model-cache: a get writes nothing, so a writer holding the row (a put
    # replacing it, a purge) never makes readers wait; the hits reach the table in one UPDATE
    config = RepositoryConfig(
        pool_size=1, max_overflow=1, query_timeout=1, cache_hits_flush_seconds=3600
    )
    with ModelRepository(models_info, config=config) as repo:
        repo.cache_predictions("locked_key", {"p": 1}, ttl_seconds=60)
        with db.connect(module_db) as writer:
            writer.execute(
                "select 1 from ml_raw.prediction_cache where cache_key = 'locked_key' for update"
            )
            for _ in range(3):
                assert repo.get_cached_predictions("locked_key") == {"p": 1}
        with db.connect(module_db) as admin:
            count = "select access_count from ml_raw.prediction_cache where cache_key = 'locked_key'"
            assert admin.execute(count).fetchone() == (0,)  # not yet flushed
            assert repo.flush_cache_hits() == 1
            assert admin.execute(count).fetchone() == (3,)
            repo.get_cached_predictions("locked_key")
            repo.get_cache_statistics()  # statistics flush first
            assert admin.execute(count).fetchone() == (4,)
            assert repo.flush_cache_hits() == 0
        repo.get_cached_predictions("locked_key")
    with db.connect(module_db) as admin:  # close() flushes what is left
        assert admin.execute(count).fetchone() == (5,)
        admin.execute("delete from ml_raw.prediction_cache where cache_key = 'locked_key'")


def test_the_models_command_lists_aliases_deletes_and_refuses_in_one_line(
    repo: ModelRepository, pg_home: Path, module_db: db.ConnInfo
) -> None:
    # docs/requirements.md#model-cli
    env = mlwh_env(pg_home, module_db.dbname)
    for _ in range(3):
        repo.save_model("cli_model", b"weights", metadata={"team": "search"})
    out = run_mlwh("models", "alias", "cli_model", "champion", "2", env=env)
    assert (out.returncode, out.stdout.strip()) == (0, "cli_model: champion -> version 2"), out.stderr
    out = run_mlwh("models", "versions", "cli_model", env=env)
    assert out.returncode == 0, out.stderr
    assert [line.split()[:3] for line in out.stdout.splitlines()[1:]] == [
        ["1", "1", "live"], ["2", "2", "live"], ["3", "3", "live"]]  # fmt: skip
    assert out.stdout.splitlines()[2].endswith("champion")
    shown = json.loads(run_mlwh("models", "show", "cli_model", "champion", env=env).stdout)
    assert (shown["version"], shown["aliases"], shown["metadata"]["team"]) == ("2", ["champion"], "search")
    assert run_mlwh("models", "delete", "cli_model", "1", env=env).returncode == 0
    out = run_mlwh("models", "versions", "cli_model", "--all", "--json", env=env)
    assert [v["is_active"] for v in json.loads(out.stdout)] == [False, True, True]
    assert run_mlwh("models", "restore", "cli_model", "1", env=env).returncode == 0
    out = run_mlwh("models", "cleanup", "cli_model", "--keep", "1", env=env)
    assert (out.returncode, out.stdout.split()[1]) == (0, "1"), out.stderr  # 1 purged, 2 aliased
    listed = json.loads(run_mlwh("models", "list", "--json", env=env).stdout)
    assert {m["model_name"]: m["live_versions"] for m in listed}["cli_model"] == 2
    stats = run_mlwh("models", "stats", env=env)
    assert stats.returncode == 0 and stats.stdout.startswith("models: "), stats.stderr
    for args, message in (
        (("show", "no_such_model"), "unknown model 'no_such_model'"),
        (("delete", "cli_model", "2"), "is champion: move or remove the alias first"),
        (("alias", "cli_model", "champion"), "give either a VERSION"),
        (("alias", "cli_model", "Bad Alias", "3"), "alias must be lowercase"),
        (("cleanup", "cli_model", "--keep", "-1"), "--keep must be 0 or more"),
    ):
        out = run_mlwh("models", *args, env=env)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr


def test_the_registry_marts_agree_with_the_repository(
    repo: ModelRepository, module_db: db.ConnInfo, dbt  # type: ignore[no-untyped-def]
) -> None:
    # docs/requirements.md#model-registry-marts
    for label in ("1", "2", "3"):
        repo.save_model("dbt_ranker", label.encode(), version=label, framework="numpy")
    repo.set_alias("dbt_ranker", "champion", "2")
    repo.save_training_metrics("dbt_ranker", "2", {"loss": 0.9}, epoch=0)
    repo.save_training_metrics("dbt_ranker", "2", {"loss": 0.5}, epoch=1)
    repo.save_training_metrics("dbt_ranker", "2", {"loss": 0.4, "accuracy": 0.8})
    repo.delete_model("dbt_ranker", "1")
    result = dbt.invoke([
        "build", "--select", "path:seeds", "+mart_model_versions", "+mart_training_metrics",
        "--exclude", "path:tests",
    ])  # fmt: skip
    assert result.ok, [(r["unique_id"], r.get("message")) for r in result.results
                       if r.get("status") not in ("pass", "success")]  # fmt: skip
    with db.connect(module_db) as conn:
        dim = conn.execute(
            "select version, version_number, aliases, is_active, has_artifact, is_champion, "
            "is_latest from ml_marts.dim_model_versions where model_name = 'dbt_ranker' "
            "order by version_number"
        ).fetchall()
        assert dim == [
            ("1", 1, None, False, True, False, False),
            ("2", 2, "champion", True, True, True, False),
            ("3", 3, None, True, True, False, True),
        ]
        metrics = conn.execute(
            "select metric_name, latest_value, first_value, min_value, max_value, point_count, "
            "last_epoch from ml_marts.mart_training_metrics where model_name = 'dbt_ranker' "
            "order by metric_name"
        ).fetchall()
        assert metrics == [("accuracy", 0.8, 0.8, 0.8, 0.8, 1, None), ("loss", 0.4, 0.9, 0.4, 0.9, 3, 1)]
        versions = conn.execute(
            "select version, registry_metrics, is_champion, online_prediction_count "
            "from ml_marts.mart_model_versions where model_name = 'dbt_ranker' order by version"
        ).fetchall()
    assert versions == [
        ("1", {}, False, 0),
        ("2", repo.get_training_metrics("dbt_ranker", "2"), True, 0),
        ("3", {}, False, 0),
    ]
