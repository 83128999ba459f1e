"""`mlwh serve`: the long-running service next to PostgreSQL (docs/serve.md).

- `app`: the ASGI application (Starlette): POST /v1/{predictions,outcomes,feedback,metrics,
  events} over the writer, /healthz, /readyz, /metrics.
- `auth`: per-service API keys, stored hashed (`mlwh keys`).
- `scheduler`: upkeep jobs on intervals, advisory-locked, recorded in ml_ops.job_runs.
- `metrics`: the Prometheus registry.

`serve()` builds everything before the port opens, so a database that cannot be reached or a
spill directory that cannot be written ends in one line (exit 2), then runs uvicorn until
SIGINT/SIGTERM, after which it stops the scheduler and flushes the writer.

Roles (docs/requirements.md#least-privilege): the writer, and the key lookups and outcome checks
on one small pool of connections, run as mlwh_ingest; /readyz and the scheduler's bookkeeping as
mlwh_maintainer; /metrics' alert counts as mlwh_analyst; each job as the role its command uses.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from runner import db
from runner.errors import MlwhError

log = logging.getLogger("runner.serve")


def serve(
    host: str, port: int, config_path: str | None = None, *, scheduler: bool | None = None,
    spill_dir: Path | None = None,
) -> None:
    """Run the server until it is told to stop (blocking)."""
    import uvicorn

    from runner.ingest import Writer
    from runner.serve.app import ServeState, connection_pool, create_app
    from runner.serve.auth import KeyStore
    from runner.serve.metrics import AlertsCollector, ServeMetrics, WriterCollector
    from runner.serve.scheduler import Scheduler, load_config

    config = load_config(config_path)  # a bad file is exit 2 before any connection
    if scheduler is not None:
        config.scheduler = scheduler
    target = db.resolve()
    db.start_announced(target)
    admin = target.conninfo()
    ingest_info = db.as_role(admin, db.INGEST, target.server)
    with db.connect(ingest_info, autocommit=True) as conn:
        if conn.execute("select to_regclass('ml_ops.api_keys')").fetchone()[0] is None:
            raise MlwhError("the database has no ml_ops.api_keys yet: run `mlwh migrate` first")
    writer = Writer(ingest_info, spill_dir=spill_dir)
    if writer.journal_path is None:
        writer.close(5.0)
        raise MlwhError(
            f"the spill directory {writer.spill_dir} cannot hold a journal, and a 2xx must mean "
            "the rows are on disk: set MLWH_SPOOL_DIR to a writable directory"
        )
    metrics = ServeMetrics()
    metrics.add(WriterCollector(writer.stats))
    analyst: list[db.ConnInfo] = []

    def analyst_info() -> db.ConnInfo:  # made on first scrape: a login on the embedded server
        if not analyst:
            analyst.append(db.as_role(admin, db.ANALYST, target.server))
        return analyst[0]

    metrics.add(AlertsCollector(analyst_info))
    pool = connection_pool(ingest_info)
    state = ServeState(
        writer=writer,
        keys=KeyStore(pool),
        pool=pool,
        ready_info=db.as_role(admin, db.MAINTAINER, target.server),
        max_body_bytes=config.max_body_bytes,
        metrics=metrics,
    )
    if config.scheduler:
        state.scheduler = Scheduler(admin, config, server=target.server, on_run=metrics.job_ran)
    jobs = ", ".join(
        f"{n} every {j.interval_seconds:g}s" for n, j in config.jobs.items() if j.enabled
    ) if config.scheduler else "off"
    print(f"mlwh serve: http://{host}:{port}/ on the {target.describe()}; writer journal "
          f"{writer.journal_path}; scheduler: {jobs}", flush=True)
    # uvicorn re-raises the SIGTERM it shut down on; a stop that was asked for is exit 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(create_app(state), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=30)
