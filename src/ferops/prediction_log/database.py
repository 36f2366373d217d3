"""The prediction log in PostgreSQL: several servers, one table (the scale-out setup).

FEROPS_PREDICTION_LOG=postgresql://user:password@host:port/db (from the environment, so the
password stays out of the process list). Each flush is one COPY in one transaction: a reader
sees all of a flush or none of it, and a killed server loses only what it had not flushed.
The table is created on first use; every message names the server without its password.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa

from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError

TABLE = "ferops_predictions"
SCHEMES = ("postgresql://", "postgres://")
COLUMNS: dict[str, str] = {
    "time": "timestamptz NOT NULL",
    "request_id": "text NOT NULL",
    "row": "integer NOT NULL",
    "source": "text",
    "model_uri": "text",
    "model_sha256": "text",
    "emotion": "text",
    "confidence": "real",
    **{f"p_{e}": "real" for e in EMOTIONS},
    "latency_ms": "real",
    "brightness": "real",
    "contrast": "real",
    "sharpness": "real",
    "image_width": "integer",
    "image_height": "integer",
    "face_png": "bytea",
}


def is_database(target: object) -> bool:
    return str(target).startswith(SCHEMES)


def without_password(uri: str) -> str:
    """The URI as it may be shown: postgresql://user:***@host:port/db."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class DatabaseStore:
    """Rows appended to one PostgreSQL table, one COPY per flush."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.created = False

    def write(self, table: pa.Table) -> None:
        import psycopg

        names = [c for c in COLUMNS if c in table.column_names]
        with psycopg.connect(self.uri) as connection:  # one transaction: all rows or none
            if not self.created:
                create(connection)
                self.created = True
            columns = ", ".join(f'"{c}"' for c in names)
            with connection.cursor().copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
                for row in zip(*(table.column(c).to_pylist() for c in names), strict=True):
                    copy.write_row(row)

    def __str__(self) -> str:
        return without_password(self.uri)


def create(connection: Any) -> None:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
    connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
    connection.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)")


def read_table(uri: str, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    """Every answer between `since` and `until`, oldest first; an unreachable server or a
    database without the table is a DataError that names it (without the password)."""
    import psycopg

    where, values = [], []
    if since is not None:
        where.append("time >= %s")
        values.append(since)
    if until is not None:
        where.append("time < %s")
        values.append(until)
    query = f"SELECT * FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "")
    try:
        with psycopg.connect(uri) as connection:
            cursor = connection.execute(query + " ORDER BY time", values)
            names = [d.name for d in cursor.description]
            rows = cursor.fetchall()
    except psycopg.errors.UndefinedTable:
        return pd.DataFrame()
    except psycopg.OperationalError as exc:
        raise DataError(f"{without_password(uri)}: cannot read the prediction log ({exc})") from exc
    frame = pd.DataFrame(rows, columns=names)
    if "face_png" in frame:
        frame["face_png"] = [None if v is None else bytes(v) for v in frame["face_png"]]
    return frame
