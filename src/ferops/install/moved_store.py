"""`ferops relocate` for the project's MLflow store: after the project folder was copied or
moved, point every artifact location the store records at the folder it is in now.

The only code that writes MLflow's schema by hand (SQLite, MLflow 3.x's SQLAlchemy tables);
`ferops.kernel.local_store` is the read-only guard that notices a moved store.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ferops.kernel.local_store import moved_from

# Every column where MLflow (3.x SQLAlchemy store) records an artifact location.
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


@dataclass(frozen=True)
class Relocation:
    old_root: Path | None  # None: nothing pointed elsewhere
    new_root: Path
    rows: int


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
