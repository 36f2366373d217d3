"""The project's own MLflow store (mlflow.db and mlartifacts/) when the project folder moves.

MLflow records artifact locations as absolute paths, so a copied or moved project would read,
and worse write, the artifacts of the folder it came from. `moved_from` notices; `relocate`
(`ferops relocate`) rewrites the recorded locations to the folder the store is in now.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ferops.kernel.errors import FeropsError

ARTIFACTS_DIR = "mlartifacts"  # beside mlflow.db: every ferops experiment's artifact root

# Every column where MLflow (3.x SQLAlchemy store) records an artifact location.
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


class StoreMoved(FeropsError):
    """The project's MLflow store still points at the folder it was copied or moved from."""


@dataclass(frozen=True)
class Relocation:
    old_root: Path | None  # None: nothing pointed elsewhere
    new_root: Path
    rows: int


def recorded_roots(db: Path) -> set[Path]:
    """The project folders whose mlartifacts/ the store's experiments point at."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        try:
            rows = connection.execute("SELECT artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # not an MLflow store (yet)
            return set()
    roots = set()
    for (location,) in rows:
        path = _local_path(location or "")
        if path is not None and path.name == ARTIFACTS_DIR:
            roots.add(path.parent)
    return roots


def moved_from(db: Path) -> Path | None:
    """The folder this store was created in, when that is not the folder it is in now."""
    if not db.is_file():
        return None
    here = db.parent.resolve()
    elsewhere = sorted(root for root in recorded_roots(db) if root != here)
    return elsewhere[0] if elsewhere else None


def check_in_place(db: Path) -> None:
    """Refuse (StoreMoved) a store whose artifacts live in another project folder."""
    old = moved_from(db)
    if old is not None:
        raise StoreMoved(
            f"{db} records its artifacts in {old / ARTIFACTS_DIR}: this project was copied or "
            f"moved from {old}. Run `make relocate` in {db.parent} once (or `ferops relocate "
            f"--root {db.parent}`) to point it here"
        )


def relocate(db: Path) -> Relocation:
    """Point every artifact location under the folder the store came from at the folder it
    is in now, in one transaction (all rows or none)."""
    here = db.parent.resolve()
    old = moved_from(db)
    if old is None:
        return Relocation(None, here, 0)
    prefixes = [(f"{old.as_uri()}/", f"{here.as_uri()}/"), (f"{old}/", f"{here}/")]
    changed = 0
    with closing(sqlite3.connect(db)) as connection, connection:
        for table, column in LOCATION_COLUMNS:
            if not _has_column(connection, table, column):
                continue
            for before, after in prefixes:
                changed += connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ?",
                    (after, len(before) + 1, len(before), before),
                ).rowcount
        # The tuning runs name their Optuna study's SQLite file, in the project folder too.
        before, after = f"sqlite:///{old}/", f"sqlite:///{here}/"
        changed += connection.execute(
            "UPDATE tags SET value = ? || substr(value, ?) "
            "WHERE key = 'ferops.optuna_storage' AND substr(value, 1, ?) = ?",
            (after, len(before) + 1, len(before), before),
        ).rowcount
    return Relocation(old, here, changed)


def _has_column(connection: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in connection.execute(f"PRAGMA table_info({table})"))


def _local_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if location.startswith("/"):
        return Path(location)
    return None
