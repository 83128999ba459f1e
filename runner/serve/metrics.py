"""`/metrics` of `mlwh serve` in the Prometheus exposition format (docs/requirements.md#serve-ops):
the writer (queue, written, spilled, rejected, flush latency), the HTTP API (requests, rows),
the scheduler (job durations and failures) and the active alerts by severity.

prometheus-client renders the format; the writer's counters and the alerts are read when
Prometheus scrapes, so nothing here runs between scrapes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runner import db

log = logging.getLogger("runner.serve.metrics")

ALERTS_CACHE_SECONDS = 15.0  # a scrape every few seconds costs one query per this period
SEVERITIES = ("warn", "error")


class WriterCollector(Collector):
    """The writer's own counters (Writer.stats()), read at each scrape."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        yield GaugeMetricFamily(
            "mlwh_writer_queued_rows", "Rows accepted and not yet in the database "
            "(in memory or waiting in the spill journal).", value=s["queued"])
        for name, key, text in (
            ("accepted", "accepted", "Rows the writer accepted."),
            ("written", "written", "Rows written to the database."),
            ("spilled", "spilled", "Rows that waited in the spill journal for the database."),
            ("rejected", "rejected", "Rows rejected (by validation or by the database)."),
            ("duplicates", "duplicates", "Rows not stored because their id was stored already."),
        ):
            yield CounterMetricFamily(f"mlwh_writer_{name}_rows", text, value=s[key])
        latency = GaugeMetricFamily(
            "mlwh_writer_flush_seconds",
            "Time to write one batch to the database, by quantile over the last 2048 batches.",
            labels=["quantile"],
        )
        for q, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
            ms = s.get(f"flush_{q}_ms")
            if ms is not None:
                latency.add_metric([quantile], ms / 1000)
        yield latency
        yield GaugeMetricFamily(
            "mlwh_writer_database_down", "1 while the writer cannot reach the database.",
            value=1 if s["database_down"] else 0)


class AlertsCollector(Collector):
    """Active alerts by severity, from ml_marts.mart_monitoring_alerts as mlwh_analyst."""

    def __init__(self, info: Callable[[], db.ConnInfo]) -> None:
        self.info = info
        self._lock = threading.Lock()
        self._at = 0.0
        self._counts: dict[str, int] | None = None

    def collect(self) -> Iterator[Metric]:
        counts = self._read()
        family = GaugeMetricFamily(
            "mlwh_active_alerts", "Active alerts in ml_marts.mart_monitoring_alerts by severity.",
            labels=["severity"],
        )
        for severity in SEVERITIES:
            if counts is not None:
                family.add_metric([severity], counts.get(severity, 0))
        yield family
        yield GaugeMetricFamily(
            "mlwh_active_alerts_readable",
            "1 when the alerts mart could be read at the last attempt.",
            value=0 if counts is None else 1)

    def _read(self) -> dict[str, int] | None:
        with self._lock:
            if time.monotonic() - self._at < ALERTS_CACHE_SECONDS:
                return self._counts
            self._at = time.monotonic()
            try:
                with db.connect(self.info(), autocommit=True, connect_timeout=3) as conn:
                    conn.execute("set statement_timeout = '10s'")
                    rows = conn.execute(
                        "select severity, count(*) from ml_marts.mart_monitoring_alerts"
                        " group by severity"
                    ).fetchall()
                self._counts = {severity: int(n) for severity, n in rows}
            except Exception as exc:  # not built yet, or the database away: say so, go on
                log.info("alerts not read for /metrics: %s", str(exc).strip().splitlines()[:1])
                self._counts = None
            return self._counts


class ServeMetrics:
    """The registry `/metrics` renders, with the server's own instruments."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double what Prometheus tracks
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlwh_http_requests", "Ingestion requests by endpoint and status code.",
            ["endpoint", "code"], registry=self.registry)
        self.rows = Counter(
            "mlwh_http_rows", "Rows received over HTTP by endpoint and outcome.",
            ["endpoint", "outcome"], registry=self.registry)
        self.request_seconds = Histogram(
            "mlwh_http_request_seconds", "Ingestion request duration, journaled answer included.",
            ["endpoint"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.job_seconds = Histogram(
            "mlwh_job_duration_seconds", "Duration of scheduled job runs.", ["job"],
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 1800))
        self.job_runs = Counter(
            "mlwh_job_runs", "Scheduled job runs by job and status (ok, failed).",
            ["job", "status"], registry=self.registry)
        self.job_failures = Counter(
            "mlwh_job_failures", "Failed scheduled job runs.", ["job"], registry=self.registry)

    def job_ran(self, job: str, status: str, seconds: float) -> None:
        self.job_seconds.labels(job).observe(seconds)
        self.job_runs.labels(job, status).inc()
        if status == "failed":
            self.job_failures.labels(job).inc()

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)
