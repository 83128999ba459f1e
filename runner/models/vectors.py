"""Embedding vectors: what the repository accepts (docs/requirements.md#model-embeddings-search).

A vector is one-dimensional, non-empty, finite and not all zeros (cosine distance is undefined
for a zero vector), with at most 16,000 numbers (pgvector's limit); the table's check says the
same for any other client, and its trigger keeps one dimension per entity type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runner.models.errors import InvalidEmbedding

MAX_DIMENSION = 16000
HNSW_MAX_DIMENSION = 2000  # wider vectors are searched exactly


def check_key(entity_type: Any, entity_id: Any) -> None:
    if not isinstance(entity_type, str) or not 1 <= len(entity_type) <= 50:
        raise InvalidEmbedding(f"entity_type must be a text of 1 to 50 characters, got {entity_type!r}")
    if not isinstance(entity_id, str) or not 1 <= len(entity_id) <= 255:
        raise InvalidEmbedding(f"entity_id must be a text of 1 to 255 characters, got {entity_id!r}")


def as_vector(values: Any, what: str) -> np.ndarray:
    """`values` as a float64 vector, or InvalidEmbedding naming `what` and the problem."""
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidEmbedding(f"{what}: not a sequence of numbers") from None
    if vector.ndim != 1:
        raise InvalidEmbedding(f"{what}: must be one-dimensional, got shape {vector.shape}")
    if vector.size == 0:
        raise InvalidEmbedding(f"{what}: is empty")
    if vector.size > MAX_DIMENSION:
        raise InvalidEmbedding(f"{what}: has {vector.size} dimensions, at most {MAX_DIMENSION}")
    bad = np.flatnonzero(~np.isfinite(vector))
    if bad.size:
        value = vector[bad[0]]
        name = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        raise InvalidEmbedding(f"{what}: contains {name} at index {int(bad[0])}")
    if not np.any(vector):
        raise InvalidEmbedding(f"{what}: is all zeros (cosine distance is undefined for it)")
    return vector
