"""Where a study lives (SQLite, PostgreSQL or an append-only journal file) and the lock that
lets many workers, on one machine or many, share it without overshooting n_trials."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from ferops.kernel.errors import ConfigError


def resolve_storage(url: str, root: Path) -> str:
    """Make a relative SQLite or journal path relative to the project root, not the cwd."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An RDB URL as it is; `journal:PATH` as Optuna's append-only file journal, which needs no
    database driver (what a bare GPU machine has); `ferops import-runs` copies it into RDB."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return url


def claim_trial(study: optuna.Study, n_trials: int, storage_url: str) -> optuna.Trial | None:
    """A new trial, or None once the study holds `n_trials` (running ones count).

    Counting and asking happen under one lock, so workers racing for the last trial never
    overshoot: the study ends with exactly `n_trials` trials.
    """
    with study_lock(storage_url, study.study_name):
        if len(study.get_trials(deepcopy=False)) >= n_trials:
            return None
        return study.ask()


@contextmanager
def study_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """A lock shared by every process using this study: a PostgreSQL advisory lock, or a file
    lock beside a SQLite database or journal file (both mean one machine)."""
    if storage_url.startswith("postgresql"):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(storage_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
    elif storage_url.startswith(("sqlite:///", "journal:")):
        path = storage_url.removeprefix("sqlite:///").removeprefix("journal:")
        lock_path = Path(path + ".study-lock")  # not Optuna's own journal lock file
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        raise ConfigError(
            f"tune.storage: use postgresql://, sqlite:/// or journal:, got {storage_url!r}"
        )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
