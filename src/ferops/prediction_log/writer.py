"""Recording answers without slowing them: `append` puts a request's rows on a bounded queue
and returns; a background thread writes what has queued every `flush_seconds`. When the queue
is full (the store is slower than the traffic), rows are dropped and counted, never waited for.
A process killed without closing loses at most the rows of the last `flush_seconds`.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa

log = logging.getLogger(__name__)


class Store(Protocol):
    def write(self, table: pa.Table) -> Any: ...


class PredictionLog:
    """A bounded queue of answer tables and the thread that flushes it to `store`."""

    def __init__(self, store: Store, *, flush_seconds: float = 2.0, capacity: int = 1024):
        self.store = store
        self.flush_seconds = flush_seconds
        self.queue: queue.Queue[pa.Table] = queue.Queue(maxsize=capacity)
        self.dropped = 0  # rows, not requests
        self.failed_flushes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferops-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, columns: Mapping[str, Any]) -> None:
        """Queue one request's rows (a mapping of equal-length columns); never blocks."""
        table = pa.table(dict(columns))
        try:
            self.queue.put_nowait(table)
        except queue.Full:
            self.dropped += table.num_rows
            if self.dropped == table.num_rows or self.dropped % 10_000 < table.num_rows:
                log.warning("prediction log full: %d answer(s) dropped so far", self.dropped)

    def flush(self) -> int:
        """Write everything queued now, in one file; the number of rows written."""
        tables = []
        while True:
            try:
                tables.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not tables:
            return 0
        table = pa.concat_tables(tables, promote_options="default")
        try:
            self.store.write(table)
        except Exception:  # a full disk, a lost database: counted and said, never raised
            self.failed_flushes += 1
            self.dropped += table.num_rows
            log.exception("prediction log: %d answer(s) could not be written", table.num_rows)
            return 0
        return table.num_rows

    def close(self) -> None:
        """Stop the thread and write what is queued (at exit, or when the model unloads)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
