"""The repository's coroutine face: the same methods, awaited (docs/requirements.md#model-repository-api).

Each call runs the synchronous method in a worker thread (`asyncio.to_thread`) on the shared
connection pool, so the event loop never waits for the database; the repository itself opens
on the first call, in a thread too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from runner.models.repository import ModelRepository

METHODS = (
    "save_model", "load_model", "get_model_version", "get_model_versions", "delete_model",
    "restore_model", "set_alias", "remove_alias", "get_aliases", "cleanup_old_models",
    "save_embeddings", "get_embeddings", "get_all_embeddings", "batch_save_embeddings",
    "search_embeddings", "cache_predictions", "get_cached_predictions", "flush_cache_hits",
    "clear_cache",
    "purge_expired_cache", "get_cache_statistics", "save_training_metrics",
    "get_training_metrics", "get_training_history", "health_check", "get_performance_metrics",
    "get_model_storage_stats", "get_embeddings_stats", "stats", "optimize_database",
)  # fmt: skip


class AsyncModelRepository:
    """`await repo.load_model("recommendation_model", "latest")`; arguments as ModelRepository."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self._repo: ModelRepository | None = None
        self._opening: asyncio.Lock | None = None

    async def _open(self) -> ModelRepository:
        if self._repo is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._repo is None:
                    self._repo = await asyncio.to_thread(ModelRepository, *self._args, **self._kwargs)
        return self._repo

    async def close(self) -> None:
        if self._repo is not None:
            await asyncio.to_thread(self._repo.close)
            self._repo = None

    async def __aenter__(self) -> AsyncModelRepository:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _coroutine(name: str) -> Callable[..., Any]:
    method = getattr(ModelRepository, name)

    @functools.wraps(method)
    async def call(self: AsyncModelRepository, *args: Any, **kwargs: Any) -> Any:
        repo = await self._open()
        return await asyncio.to_thread(getattr(repo, name), *args, **kwargs)

    return call


for _name in METHODS:
    setattr(AsyncModelRepository, _name, _coroutine(_name))
