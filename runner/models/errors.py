"""Errors of the model repository, each naming what it is about (docs/requirements.md#model-errors).

They are `MlwhError`s, so a command turns them into one line; the lookup errors are also
`LookupError`s and the refused inputs `ValueError`s, for callers that catch the builtin kinds.
"""

from __future__ import annotations

from runner.errors import MlwhError


class ModelRepositoryError(MlwhError):
    """Base class: something the repository refused or could not do."""


class ConfigError(ModelRepositoryError, ValueError):
    """A pool or cache setting in the environment is not usable."""

    exit_code = 2


class ModelNotFound(ModelRepositoryError, LookupError):
    """No such model, version or alias."""


class VersionExists(ModelRepositoryError, ValueError):
    """A version label is taken: versions are immutable."""


class ArtifactUnavailable(ModelRepositoryError, LookupError):
    """The version exists but its artifact cannot be loaded (deleted, purged, none stored)."""


class ChecksumMismatch(ModelRepositoryError):
    """The stored artifact does not match its sha256: it was changed or damaged."""


class UnsafeArtifact(ModelRepositoryError):
    """The artifact is a pickle and the caller did not allow unpickling (it runs code)."""


class AliasConflict(ModelRepositoryError, ValueError):
    """An aliased version cannot be deleted, and an alias cannot point at a deleted one."""


class InvalidEmbedding(ModelRepositoryError, ValueError):
    """A vector the repository refuses: empty, not finite, wrong shape or dimension."""


class EmbeddingNotFound(ModelRepositoryError, LookupError):
    """No embedding for that entity, or no embeddings of that type."""


class InvalidValue(ModelRepositoryError, ValueError):
    """A name, TTL, metric or cache payload the repository refuses."""
