"""The model repository: versioned model artifacts, entity embeddings with nearest-neighbour
search, a prediction cache with time-to-live and training metrics, in PostgreSQL
(docs/requirements.md#model-repository-api; docs/models.md has an example for every method).

    from runner.models import ModelRepository
    with ModelRepository() as repo:               # the database mlwh resolves, as mlwh_models
        repo.save_model("recommendation_model", model_bytes)          # version 1, 2, ...
        repo.set_alias("recommendation_model", "champion", "latest")
        data = repo.load_model("recommendation_model", "champion")    # sha256 checked

`AsyncModelRepository` has the same methods as coroutines. Artifacts that are pickles load only
with `allow_pickle=True`: unpickling runs code.
"""

from runner.models.aio import AsyncModelRepository
from runner.models.config import RepositoryConfig
from runner.models.errors import (
    AliasConflict,
    ArtifactUnavailable,
    ChecksumMismatch,
    ConfigError,
    EmbeddingNotFound,
    InvalidEmbedding,
    InvalidValue,
    ModelNotFound,
    ModelRepositoryError,
    UnsafeArtifact,
    VersionExists,
)
from runner.models.repository import ModelRepository
from runner.models.timing import OperationTiming

__all__ = [
    "AliasConflict",
    "ArtifactUnavailable",
    "AsyncModelRepository",
    "ChecksumMismatch",
    "ConfigError",
    "EmbeddingNotFound",
    "InvalidEmbedding",
    "InvalidValue",
    "ModelNotFound",
    "ModelRepository",
    "ModelRepositoryError",
    "OperationTiming",
    "RepositoryConfig",
    "UnsafeArtifact",
    "VersionExists",
]
