"""Errors a user can cause; the CLI turns them into one line and an exit code, never a traceback.

Exit codes, the same for every command (docs/requirements.md#exit-codes):
0 ok; 1 findings (a check failed, rows were rejected, a migration file changed); 2 could not
run (bad input, unreachable or unprepared database); 3 the embedded server is stopped.
"""

from __future__ import annotations

OK = 0
FINDINGS = 1
COULD_NOT_RUN = 2
STOPPED = 3
INTERRUPTED = 130

EXIT_CODES = (
    (OK, "ok"),
    (FINDINGS, "findings: a check failed (at `--fail-on`), rows were rejected, a migration file "
               "changed"),
    (COULD_NOT_RUN, "could not run: bad arguments or input, the database unreachable or not "
                    "prepared (the message says what to run)"),
    (STOPPED, "stopped: `mlwh db status` found the embedded server stopped"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)


class MlwhError(Exception):
    """A failure with a message meant for a person and the exit code the CLI should return:
    by default 2, could not run; findings pass `exit_code=FINDINGS`."""

    exit_code = COULD_NOT_RUN

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class DatabaseUnavailable(MlwhError):
    """The database cannot be reached or started: exit code 2 everywhere."""

    exit_code = COULD_NOT_RUN
