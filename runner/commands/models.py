"""`mlwh models`: the model registry from the shell (docs/requirements.md#model-cli)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from runner.errors import MlwhError


def _repository():  # type: ignore[no-untyped-def]
    # imported here: numpy and the pool load only for this command
    from runner import db
    from runner.models import ModelRepository

    return ModelRepository(db.ensure_running(db.MODELS))


def _run(call: Any) -> Any:
    """Run `call(repo)`; a refusal of the repository (unknown model, bad value) is bad input."""
    from runner.models.errors import ConfigError, ModelRepositoryError

    try:
        with _repository() as repo:
            return call(repo)
    except ConfigError:
        raise
    except ModelRepositoryError as exc:
        raise MlwhError(str(exc), exit_code=2) from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, sort_keys=True))


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def cmd_list(args: argparse.Namespace) -> int:
    stats = _run(lambda repo: repo.get_model_storage_stats())
    if args.json:
        _print_json(stats["models"])
        return 0
    if not stats["models"]:
        print("no model saved yet")
        return 0
    _table(
        ("model", "versions", "live", "bytes", "last saved"),
        [(m["model_name"], str(m["versions"]), str(m["live_versions"]), str(m["bytes"]),
          f"{m['last_saved_at']:%Y-%m-%d %H:%M:%S}") for m in stats["models"]],
    )  # fmt: skip
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    versions = _run(lambda repo: repo.get_model_versions(args.name, include_deleted=args.all))
    if args.json:
        _print_json(versions)
        return 0

    def state(v: dict[str, Any]) -> str:
        return "purged" if v["purged_at"] else "live" if v["is_active"] else "deleted"

    _table(
        ("#", "version", "state", "bytes", "created", "aliases"),
        [(str(v["version_number"]), v["version"], state(v), str(v["size_bytes"] or 0),
          f"{v['created_at']:%Y-%m-%d %H:%M:%S}", ", ".join(v["aliases"])) for v in versions],
    )  # fmt: skip
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _print_json(_run(lambda repo: repo.get_model_version(args.name, args.version)))
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    if args.remove == (args.version is not None):
        raise MlwhError("give either a VERSION to point the alias at or --remove", exit_code=2)
    if args.remove:
        _run(lambda repo: repo.remove_alias(args.name, args.alias))
        print(f"{args.name}: alias {args.alias} removed")
    else:
        done = _run(lambda repo: repo.set_alias(args.name, args.alias, args.version))
        print(f"{args.name}: {args.alias} -> version {done['version']}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _run(lambda repo: repo.delete_model(args.name, args.version))
    print(f"{args.name} version {args.version} deleted (restore with `mlwh models restore`)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    _run(lambda repo: repo.restore_model(args.name, args.version))
    print(f"{args.name} version {args.version} restored")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.keep < 0:
        raise MlwhError(f"--keep must be 0 or more, got {args.keep}", exit_code=2)
    removed = _run(lambda repo: repo.cleanup_old_models(args.name, keep_versions=args.keep))
    print(f"{args.name}: {removed} version(s) lost their artifact; the {args.keep} newest live "
          "and every aliased version kept")  # fmt: skip
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = _run(lambda repo: repo.stats())
    if args.json:
        _print_json(stats)
        return 0
    models, cache, emb = stats["models"], stats["cache"], stats["embeddings"]
    print(f"models: {models['total_models']}, versions: {models['total_versions']}, "
          f"artifact bytes: {models['total_bytes']}")
    print(f"cache: {cache['live_entries']} live and {cache['expired_entries']} expired entries, "
          f"{cache['bytes']} bytes, {cache['total_hits']} hits in total")
    search = "HNSW" if emb["pgvector"] else "exact"
    print(f"embeddings: {emb['total_embeddings']} in {len(emb['entity_types'])} entity types "
          f"(search: {search})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser(
        "models", help="the model registry: versions, aliases, cleanup, statistics",
        description="Model versions saved by runner.models.ModelRepository; connects as "
        "mlwh_models. Exit 2 for an unknown model, version or alias, or a refused value.",
    )
    m_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    def action(name: str, help_: str, func: Any, *, json_flag: bool = False) -> Any:
        parser = m_sub.add_parser(name, help=help_)
        if json_flag:
            parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)
        return parser

    action("list", "every model: versions, live versions, bytes", cmd_list, json_flag=True)
    versions = action("versions", "the versions of a model, oldest first", cmd_versions,
                      json_flag=True)  # fmt: skip
    versions.add_argument("name")
    versions.add_argument("--all", action="store_true", help="include deleted and purged ones")
    show = action("show", "one version as JSON: metadata, aliases, latest metrics", cmd_show)
    show.add_argument("name")
    show.add_argument("version", nargs="?", default="latest",
                      help="a version label, latest (default) or an alias")  # fmt: skip
    alias = action("alias", "point an alias (champion, ...) at a version, or remove it", cmd_alias)
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", nargs="?")
    alias.add_argument("--remove", action="store_true")
    for name, help_, func in (
        ("delete", "soft-delete a version (restore undoes it)", cmd_delete),
        ("restore", "undo a delete", cmd_restore),
    ):
        parser = action(name, help_, func)
        parser.add_argument("name")
        parser.add_argument("version")
    cleanup = action("cleanup", "remove the artifacts of all but the newest versions", cmd_cleanup)
    cleanup.add_argument("name")
    cleanup.add_argument("--keep", type=int, default=5, help="live versions kept (default 5)")
    action("stats", "counts and bytes of models, cache and embeddings", cmd_stats, json_flag=True)
