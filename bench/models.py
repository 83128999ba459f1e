#!/usr/bin/env python3
"""The model repository's search and cache, measured (docs/requirements.md#model-embeddings-search,
#model-cache).

  embeddings  --vectors (50,000) vectors of --dim (128) dimensions, of each --kinds: random
              (isotropic noise, the hard case for a graph index) and clustered (around 1,000
              centres, as embeddings of related items gather), saved with one
              batch_save_embeddings (COPY, then the type's HNSW index is built); --queries
              searches for the top 10 by cosine distance through the HNSW index at each
              --ef-search (default HNSW_EF_SEARCH), with recall against exact numpy search
              (target >= 0.95) and the latency of each call (p50, p95), next to exact=True
              (pgvector without the index) as the baseline.
  cache       --entries (100,000) cache entries, a tenth of them expired; get_cached_predictions
              on random live keys (p50, p99) next to a plain SELECT of the same row by its
              unique key on a connection of the same role (target: get p99 within 2x), and
              every expired key looked up once (none may come back).

Both run as mlwh_models, as applications do. By default a throw-away embedded server runs in a
temporary MLWH_HOME; --use-target uses a scratch database on the server mlwh resolves to.

    .venv/bin/python bench/models.py [--vectors 50000] [--dim 128] [--queries 200]
                                     [--kinds random,clustered] [--ef-search 200,800]
                                     [--entries 100000] [--skip-cache] [--use-target]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_server, say, scratch_database  # noqa: E402
from runner import db  # noqa: E402
from runner.models import ModelRepository, RepositoryConfig  # noqa: E402

BENCH_DB = "mlwh_bench_models"


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def _clustered(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Vectors around 1,000 fixed centres, as embeddings of related items gather."""
    centres = np.random.default_rng(0).normal(size=(1000, dim))
    return centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.5, size=(n, dim))


def _random(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Isotropic noise, every vector independent: the worst case for a graph index, where no
    point is much nearer than any other."""
    return rng.normal(size=(n, dim))


def bench_embeddings(
    repo: ModelRepository, n: int, dim: int, queries: int, kind: str, ef_values: list[int]
) -> None:
    rng = np.random.default_rng(42)
    make = _clustered if kind == "clustered" else _random
    points = make(rng, n, dim)
    started = time.perf_counter()
    repo.batch_save_embeddings(((kind, f"e{i}", p) for i, p in enumerate(points)))
    elapsed = time.perf_counter() - started
    say(f"{kind}: saved {n:,} vectors of {dim} dimensions in {elapsed:.1f} s "
         f"({n / elapsed:,.0f}/s, COPY and HNSW build)")  # fmt: skip
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    asked = make(rng, queries, dim)
    truths = [
        {f"e{i}" for i in np.argsort(1 - unit @ (q / np.linalg.norm(q)))[:10]} for q in asked
    ]
    exact = []
    for q in asked[:20]:  # the scan is slow: a sample is enough for its percentiles
        t0 = time.perf_counter()
        repo.search_embeddings(kind, q, 10, exact=True)
        exact.append(time.perf_counter() - t0)
    say(f"{kind}: exact=True (baseline, {len(exact)} queries): p50 {_ms(exact, 50):.1f} ms, "
         f"p95 {_ms(exact, 95):.1f} ms")  # fmt: skip
    for ef in [repo.config.ef_search if v is None else v for v in ef_values]:
        recalls, hnsw = [], []
        for q, truth in zip(asked, truths, strict=True):
            t0 = time.perf_counter()
            found = repo.search_embeddings(kind, q, 10, ef_search=ef)
            hnsw.append(time.perf_counter() - t0)
            recalls.append(len(truth & {e for e, _ in found}) / 10)
        recall = float(np.mean(recalls))
        verdict = "meets" if recall >= 0.95 else "MISSES"
        default = " (default)" if ef == repo.config.ef_search else ""
        say(f"{kind}: ef_search {ef}{default}: top-10 recall {recall:.3f} against exact numpy "
             f"search over {queries} queries ({verdict} >= 0.95); HNSW p50 {_ms(hnsw, 50):.2f} "
             f"ms, p95 {_ms(hnsw, 95):.2f} ms")  # fmt: skip


def bench_cache(repo: ModelRepository, info: db.ConnInfo, admin: db.ConnInfo, entries: int) -> None:
    expired = entries // 10
    with db.connect(admin, autocommit=True) as conn:  # the fill is setup, not measured
        conn.execute(
            "insert into ml_raw.prediction_cache (cache_key, predictions, metadata, cached_at, "
            "expires_at) select 'key_' || i, convert_to('{\"scores\": [0.9, 0.8, 0.7]}', 'UTF8'), "
            "'{\"encoding\": \"json\"}', now() - interval '2 hours', "
            "case when i <= %s then now() - interval '1 hour' else now() + interval '1 day' end "
            "from generate_series(1, %s) as i",
            [expired, entries],
        )
        conn.execute("vacuum analyze ml_raw.prediction_cache")
    rng = random.Random(7)
    keys = [f"key_{rng.randint(expired + 1, entries)}" for _ in range(5000)]
    for key in keys[:200]:  # warm both paths
        repo.get_cached_predictions(key)
    gets, selects = [], []
    with db.connect(info, autocommit=True) as plain:
        for key in keys[:200]:
            plain.execute("select predictions from ml_raw.prediction_cache where cache_key = %s", [key])
        for key in keys:
            t0 = time.perf_counter()
            assert repo.get_cached_predictions(key) is not None
            gets.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plain.execute(
                "select predictions from ml_raw.prediction_cache where cache_key = %s", [key]
            ).fetchone()
            selects.append(time.perf_counter() - t0)
    returned = sum(repo.get_cached_predictions(f"key_{i}") is not None for i in range(1, expired + 1))
    ratio = _ms(gets, 99) / _ms(selects, 99)
    verdict = "meets" if ratio <= 2 else "MISSES"
    say(f"cache of {entries:,} entries ({expired:,} expired): {len(keys):,} gets of live keys")
    say(f"get_cached_predictions  p50 {_ms(gets, 50):.3f} ms, p99 {_ms(gets, 99):.3f} ms   "
         f"plain SELECT by key: p50 {_ms(selects, 50):.3f} ms, p99 {_ms(selects, 99):.3f} ms   "
         f"p99 ratio {ratio:.2f}x ({verdict} the <= 2x target)")  # fmt: skip
    say(f"expired entries returned: {returned} of {expired:,} looked up")


def run(admin: db.ConnInfo, server: db.EmbeddedServer | None, args: argparse.Namespace) -> None:
    info = db.as_role(admin, db.MODELS, server)
    say(f"PostgreSQL {info.where}, database {info.dbname}, as {info.user}")
    config = RepositoryConfig(pool_size=2, max_overflow=2, query_timeout=600)
    with ModelRepository(info, config=config) as repo:
        if repo.vector_schema is None:
            say("pgvector is not installed here: every search is exact")
        for kind in args.kinds.split(","):
            bench_embeddings(repo, args.vectors, args.dim, args.queries, kind, args.ef_search)
        if not args.skip_cache:
            bench_cache(repo, info, admin, args.entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--kinds", default="random,clustered", help="random, clustered or both")
    parser.add_argument(
        "--ef-search", type=lambda t: [int(v) for v in t.split(",")], default=[None],
        help="comma-separated ef_search values to measure (default: the repository's)",
    )
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument(
        "--use-target",
        action="store_true",
        help="use the server mlwh resolves to (scratch database) instead of a temporary one",
    )
    args = parser.parse_args()
    with bench_server(args.use_target) as (admin, server):
        run(scratch_database(admin, BENCH_DB), server, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
