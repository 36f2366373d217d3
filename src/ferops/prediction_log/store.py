"""Where answers are kept: a folder of append-only Parquet files, and how they are read back.

Each flush writes one whole file under a folder per day (`2026-12-05/`), named after the time,
the host and the process, through a temporary name and a rename: a reader never sees half a
file, several server processes never write the same file, and a killed process loses only
what it had not flushed yet. A file damaged anyway (a disk full, a copy cut short) is skipped
by every reader with a warning that names it.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ferops.kernel.errors import DataError
from ferops.prediction_log.database import is_database, read_table

log = logging.getLogger(__name__)

SUFFIX = ".parquet"


class FolderStore:
    """Append-only Parquet files in `root`, one file per flush."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.writer = f"{socket.gethostname()}-{os.getpid()}"
        self.written = 0

    def write(self, table: pa.Table) -> Path:
        now = datetime.now(UTC)
        folder = self.root / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        self.written += 1
        name = f"{now.strftime('%H%M%S.%f')}-{self.writer}-{self.written:06d}{SUFFIX}"
        staged = folder / f".{name}.tmp"
        pq.write_table(table, staged, compression="zstd")
        staged.rename(folder / name)
        return folder / name

    def __str__(self) -> str:
        return str(self.root)


def log_files(root: Path) -> list[Path]:
    """The log's files, oldest first (the names sort by day, then time)."""
    return sorted(p for p in Path(root).glob(f"*/*{SUFFIX}") if not p.name.startswith("."))


def read_log(
    root: Path | str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every logged answer under `root` (a folder, or a postgresql:// URI) between `since` and
    `until` (UTC), oldest first, as a DataFrame; a file that cannot be read is skipped with a
    warning naming it. A missing folder is a DataError that says where it looked."""
    if is_database(root):
        return read_table(str(root), since, until)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no prediction log there (is FEROPS_PREDICTION_LOG set?)")
    tables = []
    for path in log_files(root):
        try:
            tables.append(pq.read_table(path))
        except (OSError, pa.ArrowException) as exc:
            log.warning("skipping %s: not a readable Parquet file (%s)", path, exc)
    if not tables:
        return pd.DataFrame()
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    if since is not None:
        frame = frame[frame["time"] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame["time"] < pd.Timestamp(until)]
    return frame.sort_values("time", kind="stable").reset_index(drop=True)
