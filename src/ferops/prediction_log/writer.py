"""Recording answers without slowing them: `append` puts a request's answers (arrays, as the
request path has them) on a bounded queue and returns; a background thread turns what has
queued into columns and writes them every `flush_seconds`. When the queue
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


class Rows(Protocol):
    """A request's answers; the flush thread turns all it holds into columns at once."""

    @staticmethod
    def columns_of(batch: list[Any]) -> Mapping[str, Any]: ...


class PredictionLog:
    """A bounded queue of answer tables and the thread that flushes it to `store`."""

    def __init__(self, store: Store, *, flush_seconds: float = 2.0, capacity: int = 1024):
        self.store = store
        self.flush_seconds = flush_seconds
        self.queue: queue.Queue[Rows] = queue.Queue(maxsize=capacity)
        self.dropped = 0  # requests whose answers were not recorded
        self.failed_flushes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferops-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, rows: Rows) -> None:
        """Queue one request's answers; never blocks (a full queue drops them, counted)."""
        try:
            self.queue.put_nowait(rows)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("prediction log full: %d request(s) dropped so far", self.dropped)

    def flush(self) -> int:
        """Write everything queued now, in one file; the number of rows written."""
        batches = []
        while True:
            try:
                batches.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not batches:
            return 0
        try:
            table = pa.table(dict(type(batches[0]).columns_of(batches)))
            self.store.write(table)
        except Exception:  # a full disk, a lost database: counted and said, never raised
            self.failed_flushes += 1
            self.dropped += len(batches)
            log.exception("prediction log: %d request(s) could not be written", len(batches))
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
