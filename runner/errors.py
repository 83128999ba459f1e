"""Errors a user can cause; the CLI turns them into one line and an exit code, never a traceback."""

from __future__ import annotations


class MlwhError(Exception):
    """A failure with a message meant for a person and the exit code the CLI should return."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class DatabaseUnavailable(MlwhError):
    """The database cannot be reached or started: exit code 2 everywhere."""

    exit_code = 2
