"""Whether the project's own MLflow store (mlflow.db and mlartifacts/) is where it was made.

MLflow records artifact locations as absolute paths, so a copied or moved project would read,
and worse write, the artifacts of the folder it came from. `moved_from` notices, and every
command that opens the store (`Layout.tracking_uri`, in any layer) refuses it; this guard reads
the store and never writes it. `ferops.install.moved_store.relocate` (`ferops relocate`)
rewrites the recorded locations.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

from ferops.kernel.errors import FeropsError

ARTIFACTS_DIR = "mlartifacts"  # beside mlflow.db: every ferops experiment's artifact root


class StoreMoved(FeropsError):
    """The project's MLflow store still points at the folder it was copied or moved from."""


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


def _local_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if location.startswith("/"):
        return Path(location)
    return None
