"""The eighteen steps (0 to 17) in the order they run, each with its id, name and config block
(docs/requirements.md#maintenance-steps). `mlwh maintain --steps` takes ids or numbers."""

from __future__ import annotations

from runner.maintenance import health, indexes, learning, sessions
from runner.maintenance.engine import Step

STEPS: tuple[Step, ...] = (
    Step(0, "status", "run status and bypasses", None, health.status,
         result_key="bypass_status"),
    Step(1, "integrity", "integrity check", "integrity_check", health.integrity, heavy=True,
         result_key="integrity_check"),
    Step(2, "orphaned_indexes", "orphaned indexes", "orphaned_index_cleanup",
         indexes.orphaned_indexes),
    Step(3, "invalid_indexes", "invalid indexes", "invalid_index_cleanup",
         indexes.invalid_indexes),
    Step(4, "stale_locks", "stale advisory locks", "stale_lock_cleanup", sessions.stale_locks),
    Step(5, "stale_operations", "stale operations", "stale_operations",
         sessions.stale_operations),
    Step(6, "unused_indexes", "unused indexes", "index_cleanup", indexes.unused_indexes),
    Step(7, "bloat", "table and index bloat", "index_health", indexes.bloat, heavy=True),
    Step(8, "patterns", "pattern learning", "pattern_learning", learning.patterns,
         interval_key="interval"),
    Step(9, "statistics", "statistics refresh", "statistics_refresh", health.statistics,
         interval_key="interval_hours", interval_seconds_per_unit=3600),
    Step(10, "redundant_indexes", "redundant indexes", "redundant_index_detection",
         indexes.redundant_indexes),
    Step(11, "workload", "workload analysis", "workload_analysis", health.workload,
         interval_key="interval"),
    Step(12, "fk_indexes", "foreign keys without an index", "foreign_key_suggestions",
         indexes.foreign_key_indexes, interval_key="interval"),
    Step(13, "index_builds", "hanging concurrent index builds", "concurrent_index_monitoring",
         indexes.index_builds),
    Step(14, "materialized_views", "materialized views", "materialized_view_support",
         health.materialized_views, interval_key="interval"),
    Step(15, "safeguards", "safeguard metrics", "safeguard_metrics", health.safeguards),
    Step(16, "predictive", "predictive maintenance", "predictive_maintenance",
         learning.predictive, interval_key="interval"),
    Step(17, "training", "next-findings model", "ml_interception", learning.training,
         enabled_key="training_enabled", interval_key="training_interval"),
)  # fmt: skip
