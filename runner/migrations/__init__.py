"""Versioned, checksummed, locked, reversible migrations of the raw landing tables.

One file per migration, `migrations/NNNN_slug.sql`, with a `-- migrate:up` and a
`-- migrate:down` section (dbmate's format). `transaction:false` on a marker runs that section
statement by statement outside a transaction (CREATE INDEX CONCURRENTLY); a down written as
`-- migrate:down irreversible: <reason>` refuses to roll back. Text before the first marker is
a header (comments) and is ignored. Bookkeeping lives in `ml_ops.schema_migrations` (what is
applied, with the file's sha256) and the append-only `ml_ops.migration_log` (every attempt).
A session advisory lock keeps two migrators from racing. Each statement runs with a short
`lock_timeout` and is retried with backoff: a migration waiting for an ACCESS EXCLUSIVE lock
blocks every writer queued behind it, so it must never wait long in one go. A rollback whose
down sections would drop rows refuses unless forced (docs/requirements.md#rollback-guard).
"""

from runner.migrations.authoring import (
    expected_macro_path,
    new_migration,
    render_expected_macro,
    sync_expected_macro,
)
from runner.migrations.engine import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_RETRIES,
    RETRY_PAUSE_FIRST,
    RETRY_PAUSE_MAX,
    MigrationEngine,
    StatusRow,
    grant_database,
    migrate_to_head,
)
from runner.migrations.files import (
    Migration,
    Section,
    Statement,
    default_directory,
    load_migrations,
    parse_migration,
    split_statements,
)
from runner.migrations.losses import Drop, Loss, destructive_steps
from runner.migrations.pg_dump import backup
from runner.migrations.squawk import lint

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_RETRIES",
    "RETRY_PAUSE_FIRST",
    "RETRY_PAUSE_MAX",
    "Drop",
    "Loss",
    "Migration",
    "MigrationEngine",
    "Section",
    "Statement",
    "StatusRow",
    "backup",
    "default_directory",
    "destructive_steps",
    "expected_macro_path",
    "grant_database",
    "lint",
    "load_migrations",
    "migrate_to_head",
    "new_migration",
    "parse_migration",
    "render_expected_macro",
    "split_statements",
    "sync_expected_macro",
]
