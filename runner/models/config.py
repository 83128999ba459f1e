"""The repository's pool and cache settings, from the environment (docs/requirements.md#model-config).

The database comes from `runner.db` like every other command; these variables keep the names a
deployment of the former repository already sets. The pool defaults are smaller than that
repository's (20 + 40 overflow): the embedded server allows 100 connections, shared with dbt
and the writers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from runner.models.errors import ConfigError

# the variable that sets each field, for error messages
VARIABLES = {
    "pool_size": "DB_POOL_SIZE",
    "max_overflow": "DB_MAX_OVERFLOW",
    "pool_timeout": "DB_POOL_TIMEOUT",
    "query_timeout": "QUERY_TIMEOUT",
    "cache_default_ttl": "CACHE_DEFAULT_TTL",
    "cache_max_ttl": "CACHE_MAX_TTL",
    "slow_operation_ms": "slow_operation_ms",
    "cache_hits_flush_seconds": "CACHE_HITS_FLUSH_SECONDS",
    "ef_search": "HNSW_EF_SEARCH",
}


@dataclass(frozen=True)
class RepositoryConfig:
    pool_size: int = 5  # DB_POOL_SIZE: connections kept open
    max_overflow: int = 10  # DB_MAX_OVERFLOW: more opened under load, closed when idle
    pool_timeout: float = 30.0  # DB_POOL_TIMEOUT: seconds to wait for a free connection
    query_timeout: float = 30.0  # QUERY_TIMEOUT: statement_timeout of every statement, seconds
    cache_default_ttl: int = 3600  # CACHE_DEFAULT_TTL: seconds, when a put names none
    cache_max_ttl: int = 86400  # CACHE_MAX_TTL: seconds; a longer TTL is refused
    enable_metrics: bool = True  # ENABLE_METRICS: keep each operation's latency in memory
    slow_operation_ms: float = 100.0  # an operation slower than this is listed in stats()
    # CACHE_HITS_FLUSH_SECONDS: cache hits are counted in memory and written this often
    cache_hits_flush_seconds: float = 5.0
    # HNSW_EF_SEARCH: candidates an HNSW search visits (1 to 1000), the recall/latency trade-off;
    # 800 finds >= 0.95 of the true top 10 even on isotropic noise (bench/models.py)
    ef_search: int = 800

    def __post_init__(self) -> None:
        for name in ("pool_size", "cache_default_ttl", "cache_max_ttl"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{VARIABLES[name]} must be at least 1, got {getattr(self, name)}")
        for name in ("max_overflow",):
            if getattr(self, name) < 0:
                raise ConfigError(f"{VARIABLES[name]} must be 0 or more, got {getattr(self, name)}")
        for name in ("pool_timeout", "query_timeout", "slow_operation_ms", "cache_hits_flush_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{VARIABLES[name]} must be more than 0, got {getattr(self, name)}")
        if isinstance(self.ef_search, bool) or not 1 <= self.ef_search <= 1000:
            raise ConfigError(f"HNSW_EF_SEARCH must be from 1 to 1000, got {self.ef_search}")
        if self.cache_default_ttl > self.cache_max_ttl:
            raise ConfigError(
                f"CACHE_DEFAULT_TTL ({self.cache_default_ttl}) is above CACHE_MAX_TTL "
                f"({self.cache_max_ttl})"
            )

    @property
    def max_size(self) -> int:
        return self.pool_size + self.max_overflow

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RepositoryConfig:
        """Defaults overridden by DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, QUERY_TIMEOUT,
        CACHE_DEFAULT_TTL, CACHE_MAX_TTL, CACHE_HITS_FLUSH_SECONDS, HNSW_EF_SEARCH and ENABLE_METRICS; a bad value names its variable."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field, kind in (
            ("pool_size", int),
            ("max_overflow", int),
            ("pool_timeout", float),
            ("query_timeout", float),
            ("cache_default_ttl", int),
            ("cache_max_ttl", int),
            ("cache_hits_flush_seconds", float),
            ("ef_search", int),
        ):
            var = VARIABLES[field]
            text = env.get(var)
            if text is None or not text.strip():
                continue
            try:
                values[field] = kind(text)
            except ValueError:
                noun = "a whole number" if kind is int else "a number"
                raise ConfigError(f"{var} must be {noun}, got {text!r}") from None
        flag = env.get("ENABLE_METRICS")
        if flag is not None and flag.strip():
            if flag.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"ENABLE_METRICS must be true or false, got {flag!r}")
            values["enable_metrics"] = flag.strip().lower() in ("true", "1", "yes")
        return cls(**values)  # type: ignore[arg-type]
