"""Latency of each repository operation, kept in memory for stats() (docs/requirements.md#model-stats)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])
KEEP = 10_000  # latest timings kept per operation


@dataclass(frozen=True)
class OperationTiming:
    """One call: `query_type` and `execution_time` (seconds) are the names callers already use."""

    query_type: str
    execution_time: float
    started_at: datetime
    ok: bool


class Timings:
    def __init__(self, enabled: bool, slow_ms: float) -> None:
        self.enabled = enabled
        self.slow_ms = slow_ms
        self._lock = threading.Lock()
        self._by_op: dict[str, deque[OperationTiming]] = {}
        self._recent: deque[OperationTiming] = deque(maxlen=KEEP)

    @contextmanager
    def measure(self, op: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        started, t0, ok = datetime.now(UTC), time.perf_counter(), False
        try:
            yield
            ok = True
        finally:
            timing = OperationTiming(op, time.perf_counter() - t0, started, ok)
            with self._lock:
                self._by_op.setdefault(op, deque(maxlen=KEEP)).append(timing)
                self._recent.append(timing)

    def recent(self) -> list[OperationTiming]:
        with self._lock:
            return list(self._recent)

    def summary(self) -> dict[str, Any]:
        """Per operation: count, errors and latency percentiles in ms; the slow calls."""
        with self._lock:
            by_op = {op: list(items) for op, items in self._by_op.items()}
        operations = {}
        for op, items in sorted(by_op.items()):
            ms = np.array([t.execution_time * 1000 for t in items])
            operations[op] = {
                "count": len(items),
                "errors": sum(not t.ok for t in items),
                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p95_ms": round(float(np.percentile(ms, 95)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "max_ms": round(float(ms.max()), 3),
            }
        slow = [
            {"operation": t.query_type, "ms": round(t.execution_time * 1000, 3),
             "started_at": t.started_at.isoformat()}
            for items in by_op.values() for t in items if t.execution_time * 1000 > self.slow_ms
        ]
        slow.sort(key=lambda s: -s["ms"])
        return {"slow_operation_ms": self.slow_ms, "operations": operations,
                "slow_operations": slow[:20]}


def timed(method: F) -> F:
    """Record the call's latency under the method's name."""

    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._timings.measure(method.__name__):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
