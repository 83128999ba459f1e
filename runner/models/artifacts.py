"""Model artifacts as bytes: what `save_model` accepts and how `load_model` gives it back.

Bytes and files are stored as they are. Any other object is pickled on save, which runs no
code; loading a pickle would (unpickling can execute anything its writer chose), so
`load_model` refuses unless the caller passes `allow_pickle=True`
(docs/requirements.md#model-artifact-integrity).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from runner.models.errors import ChecksumMismatch, InvalidValue, UnsafeArtifact

BYTES = "bytes"
PICKLE = "pickle"


def to_bytes(model_data: Any) -> tuple[bytes, dict[str, str]]:
    """The artifact's bytes and how they were made (kept in the version's metadata)."""
    if isinstance(model_data, bytes | bytearray | memoryview):
        return bytes(model_data), {"serialization": BYTES}
    if isinstance(model_data, str | os.PathLike):
        path = Path(model_data)
        if not path.is_file():
            raise InvalidValue(
                f"model_data: no such file {str(path)!r} (a str is a path; pass bytes for raw "
                "content)"
            )
        return path.read_bytes(), {"serialization": BYTES, "source_file": path.name}
    kind = type(model_data)
    return pickle.dumps(model_data, protocol=5), {
        "serialization": PICKLE,
        "python_type": f"{kind.__module__}.{kind.__qualname__}",
    }


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected: str | None, what: str) -> None:
    """Refuse bytes that do not match their stored sha256."""
    actual = sha256_hex(data)
    if expected is not None and actual != expected:
        raise ChecksumMismatch(
            f"{what}: the stored artifact fails its checksum (sha256 {actual[:12]}..., expected "
            f"{expected[:12]}...): it was changed or damaged after it was saved; do not use it"
        )


def from_bytes(data: bytes, serialization: str, what: str, allow_pickle: bool) -> Any:
    if serialization != PICKLE:
        return data
    if not allow_pickle:
        raise UnsafeArtifact(
            f"{what} is a pickle, and unpickling runs whatever code its writer put in it: pass "
            "allow_pickle=True if you trust everyone who can write ml_raw.ml_models, or raw=True "
            "for the bytes"
        )
    return pickle.loads(data)  # noqa: S301 - the caller opted in, see above
