"""The configuration of `mlwh maintain`: defaults, the YAML file that overrides them, validation.

The file has two sections (docs/requirements.md#maintenance-config): `operational.
maintenance_tasks` (the master toggle, the interval between runs and the safeguards) and
`features` (one block per step: its toggle, its thresholds, what `--apply` may do). Every key
has a default below; a file names only what it changes. A wrong key, type or value is one line
naming the file, the key and what is allowed (exit code 2).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.errors import MlwhError

SEVERITIES = ("info", "warn", "error")

# The defaults of the upkeep routine this replaces (docs/requirements.md#maintenance-config).
DEFAULTS: dict[str, Any] = {
    "operational": {
        "maintenance_tasks": {
            "enabled": True,
            "interval_seconds": 3600,
            "fail_on": "warn",
            "lock_timeout_ms": 1000,
            "statement_timeout_seconds": 300,
            "max_active_connections": 20,
            "max_writer_queue": 200,
            "window": "",
            "max_reindex_size_mb": 1024.0,
            "vacuum_cost_delay_ms": 2.0,
            "max_parallel_workers": 0,
        }
    },
    "features": {
        "integrity_check": {"enabled": True, "amcheck_max_index_mb": 1024.0},
        "orphaned_index_cleanup": {"enabled": True},
        "invalid_index_cleanup": {"enabled": True, "auto_drop": True},
        "stale_lock_cleanup": {"enabled": True, "max_age_seconds": 300, "release": True},
        "stale_operations": {
            "enabled": True,
            "max_age_seconds": 600,
            "terminate_idle_in_transaction": True,
        },
        "index_cleanup": {
            "enabled": True,
            "min_scans": 10,
            "days_unused": 7,
            "auto_cleanup": False,
        },
        "index_health": {
            "enabled": True,
            "bloat_threshold": 20.0,
            "min_size_mb": 1.0,
            "auto_reindex": False,
            "vacuum": True,
        },
        "pattern_learning": {
            "enabled": True,
            "interval": 3600,
            "min_occurrences": 3,
            "slow_query_ms": 1000.0,
        },
        "statistics_refresh": {
            "enabled": True,
            "interval_hours": 24,
            "stale_threshold_hours": 24,
            "min_table_size_mb": 10.0,
            "max_tables": 10,
            "modified_share": 0.2,
        },
        "redundant_index_detection": {"enabled": True},
        "workload_analysis": {"enabled": True, "interval": 21600},
        "foreign_key_suggestions": {"enabled": True, "interval": 21600},
        "concurrent_index_monitoring": {"enabled": True, "hanging_after_seconds": 3600},
        "materialized_view_support": {
            "enabled": True,
            "interval": 43200,
            "stale_after_hours": 24,
            "refresh": True,
        },
        "safeguard_metrics": {
            "enabled": True,
            "max_usage_pct": 85.0,
            "database_max_bytes": 10737418240,
            "min_cache_hit_ratio": 0.9,
        },
        "predictive_maintenance": {"enabled": True, "interval": 86400, "horizon_days": 7},
        "ml_interception": {
            "training_enabled": True,
            "training_interval": 86400,
            "min_samples": 50,
        },
    },
}

# Keys whose value is one of a few words, and keys that are fractions rather than amounts.
CHOICES = {"fail_on": SEVERITIES}
FRACTIONS = {"modified_share", "min_cache_hit_ratio"}
PERCENTS = {"bloat_threshold", "max_usage_pct"}
WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Config:
    """A validated configuration: `settings` has every key, defaults filled in."""

    settings: dict[str, Any]
    source: str  # the file it came from, or "defaults"

    @property
    def tasks(self) -> dict[str, Any]:
        return self.settings["operational"]["maintenance_tasks"]

    def feature(self, name: str) -> dict[str, Any]:
        return self.settings["features"][name]

    def window(self) -> tuple[int, int] | None:
        """The maintenance window as minutes after midnight UTC (start, end), or None: any time."""
        match = WINDOW.match(self.tasks["window"])
        if not match:
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return h1 * 60 + m1, h2 * 60 + m2


def load_config(path: str | Path | None = None) -> Config:
    """The defaults, overridden by the YAML file at `path` when one is given."""
    settings = copy.deepcopy(DEFAULTS)
    if path is None:
        return Config(settings, "defaults")
    where = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise MlwhError(f"maintenance config {where}: cannot read it ({exc.strerror})", 2) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise MlwhError(f"maintenance config {where}: {problem}{line}", 2) from exc
    if data is None:
        data = {}
    _merge(settings, data, where, "")
    return Config(settings, where)


def _merge(into: dict[str, Any], data: object, where: str, prefix: str) -> None:
    if not isinstance(data, dict):
        raise MlwhError(f"maintenance config {where}: {prefix or 'the file'} must be a mapping", 2)
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in into:
            known = ", ".join(sorted(into))
            raise MlwhError(f"maintenance config {where}: unknown key {name} (known: {known})", 2)
        default = into[key]
        if isinstance(default, dict):
            _merge(default, value, where, f"{name}.")
        else:
            into[key] = _checked(key, name, value, default, where)


def _checked(key: str, name: str, value: object, default: object, where: str) -> object:
    def bad(expected: str) -> MlwhError:
        return MlwhError(f"maintenance config {where}: {name} must be {expected}, got {value!r}", 2)

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if value < 0:
            raise bad("zero or more")
        if key in FRACTIONS and value > 1:
            raise bad("between 0 and 1")
        if key in PERCENTS and value > 100:
            raise bad("a percentage between 0 and 100")
        if isinstance(default, int) and not isinstance(value, int):
            raise bad("a whole number")
        return value
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise bad("one of " + ", ".join(CHOICES[key]))
        return value
    if key == "window":
        if value in (None, ""):
            return ""
        if not isinstance(value, str) or not WINDOW.match(value):
            raise bad('"HH:MM-HH:MM" (UTC) or empty for any time')
        return value
    raise bad(type(default).__name__)  # pragma: no cover - every default is handled above
