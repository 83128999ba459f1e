"""The migration files: `NNNN_slug.sql` with a `-- migrate:up` and a `-- migrate:down` section,
parsed into statements that know the line they start on, so an error names file and line."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlparse.engine import FilterStack
from sqlparse.tokens import Comment, Punctuation

from runner import db
from runner.errors import MlwhError

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MARKER = re.compile(r"^--\s*migrate:(up|down)\b(.*)$")
RUNS_AS_SUPERUSER = re.compile(r"^--\s*runs as:\s*superuser\s*$")


@dataclass(frozen=True)
class Statement:
    line: int  # 1-based line in the file where the statement starts
    sql: str


@dataclass(frozen=True)
class Section:
    direction: str
    transactional: bool
    body: str  # the section's text, from the line after its marker
    first_line: int  # the line of the file where `body` starts
    irreversible_reason: str | None = None

    @functools.cached_property
    def statements(self) -> tuple[Statement, ...]:
        """Split when first needed: `status`, `verify` and an up-to-date `migrate` never are."""
        return split_statements(self.body, self.first_line)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    checksum: str
    up: Section
    down: Section
    # `-- runs as: superuser` in the header: roles, BYPASSRLS and event triggers need one; every
    # other migration runs as the owner role mlwh_owner (docs/requirements.md#least-privilege)
    superuser: bool = False

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def filename(self) -> str:
        return self.path.name


@functools.lru_cache(maxsize=512)
def split_statements(text: str, first_line: int = 1) -> tuple[Statement, ...]:
    """Split SQL into statements with sqlparse, each with the line its code starts on.

    sqlparse knows quotes, `E''` escapes, dollar quotes, comments, `begin atomic ... end`
    bodies and rules' parenthesised actions; it does not know nested block comments
    (`/* /* */ */`), which PostgreSQL allows: a migration does not need them. Splitting
    without sqlparse's grouping costs about 20 ms a file, once per process (cached).
    """
    statements: list[Statement] = []
    line = first_line
    for parsed in FilterStack().run(text):
        tokens = list(parsed.flatten())
        code = [k for k, t in enumerate(tokens) if not (t.is_whitespace or t.ttype in Comment)]
        # the terminating `;` and a comment after it on its line are not part of the statement
        end = code[-1] if code and tokens[code[-1]].match(Punctuation, ";") else len(tokens)
        if code and code[0] < end:
            before = "".join(t.value for t in tokens[: code[0]])
            body = "".join(t.value for t in tokens[:end]).strip()
            statements.append(Statement(line + before.count("\n"), body))
        line += str(parsed).count("\n")
    return tuple(statements)


def parse_migration(path: Path) -> Migration:
    match = FILE_PATTERN.match(path.name)
    if not match:
        raise MlwhError(f"{path.name}: migration files are named NNNN_slug.sql (slug: a-z, 0-9, _)")
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    lines = text.splitlines(keepends=True)
    markers: list[tuple[int, str, str]] = []
    for index, content in enumerate(lines):
        found = MARKER.match(content.strip())
        if found:
            markers.append((index, found.group(1), found.group(2).strip()))
    directions = [m[1] for m in markers]
    if directions != ["up", "down"]:
        raise MlwhError(
            f"{path.name}: needs exactly one '-- migrate:up' followed by one '-- migrate:down' "
            f"section (found {directions or 'none'})"
        )
    sections: dict[str, Section] = {}
    for k, (index, direction, options) in enumerate(markers):
        end = markers[k + 1][0] if k + 1 < len(markers) else len(lines)
        body = "".join(lines[index + 1 : end])
        reason = None
        if direction == "down" and options.startswith("irreversible"):
            reason = options.partition(":")[2].strip() or "declared irreversible"
            if split_statements(body, index + 2):
                raise MlwhError(f"{path.name}: an irreversible down section must be empty")
        elif options and options != "transaction:false":
            raise MlwhError(f"{path.name}: unknown option {options!r} on line {index + 1}")
        transactional = options != "transaction:false"
        sections[direction] = Section(direction, transactional, body, index + 2, reason)
    return Migration(
        version=match.group(1),
        name=match.group(2),
        path=path,
        checksum=hashlib.sha256(raw).hexdigest(),
        up=sections["up"],
        down=sections["down"],
        superuser=any(RUNS_AS_SUPERUSER.match(line.strip()) for line in lines[: markers[0][0]]),
    )


def default_directory() -> Path:
    env = os.environ.get("MLWH_MIGRATIONS_DIR")
    return Path(env).resolve() if env else db.project_dir() / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or default_directory()
    if not directory.is_dir():
        raise MlwhError(f"migrations directory {directory} does not exist")
    migrations = [parse_migration(p) for p in sorted(directory.glob("*.sql"))]
    seen: dict[str, str] = {}
    for m in migrations:
        if m.version in seen:
            raise MlwhError(f"two migrations share version {m.version}: {seen[m.version]} and {m.filename}")
        seen[m.version] = m.filename
    return migrations
