"""Prefect settings that ferops' entry points (the CLI, the flow files) set before Prefect is
imported, the one line they print when Prefect's temporary server does not start, and the
console filter that keeps a failed flow's traceback off the terminal."""

from __future__ import annotations

import logging
import os

# Without PREFECT_API_URL each flow starts a temporary server; Prefect waits 20 s for it, and on
# a busy 2-core machine it took longer, ending the run in a raw RuntimeError.
STARTUP_TIMEOUT_S = 120


def prefect_defaults() -> None:
    """Give the temporary server time to start, and keep it from calling home (offline, each
    failed telemetry call logged an ERROR line). A user's own settings win."""
    timeout = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    os.environ.setdefault(timeout, str(STARTUP_TIMEOUT_S))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def server_start_failure(exc: BaseException) -> str | None:
    """One line for a temporary Prefect server that did not start; None for anything else."""
    if not (isinstance(exc, RuntimeError) and "ephemeral Prefect API server" in str(exc)):
        return None
    waited = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "20")
    return (
        f"Prefect's temporary server did not start within {waited} s; raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run `prefect server start` and "
        "set PREFECT_API_URL=http://127.0.0.1:4200/api"
    )


class NoConsoleTraceback(logging.Filter):
    """For the console handler only: a failure is one line there (`-v` shows the traceback).
    Prefect's API handler sits on the flow and task loggers, so it formats each record,
    traceback included, for the UI before the record reaches the root's console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_console_tracebacks() -> None:
    """On the root's console handlers: Prefect's own, or the `ferops` command's (which
    configures logging before Prefect is imported)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.addFilter(NoConsoleTraceback())
