"""Subcommands of `mlwh`, one module per topic; each defines `register(subparsers)`.

Handlers take the parsed arguments and return an exit code; they raise `MlwhError` for
failures a user can cause.
"""
