"""Ingest stage: read the configured source and write data/interim (the raw face set)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ferops.data.faceset import save_faceset
from ferops.data.sources import class_counts, read_source
from ferops.kernel.config import DataConfig, Params
from ferops.kernel.files import write_json
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Read data.source (synthetic, fer2013-csv or image-folder) into data/interim."""
    return ingest(
        params.data, seed=params.seed, out_dir=layout.interim, report_path=layout.ingest_report
    )


def ingest(data: DataConfig, *, seed: int, out_dir: Path, report_path: Path) -> dict[str, Any]:
    """Read the source, then write the interim face set and reports/ingest.json.

    Reading happens before any write, so a bad input leaves the previous output untouched.
    """
    started = time.perf_counter()
    faceset, notes = read_source(data, seed=seed)
    seconds_read = time.perf_counter() - started
    save_faceset(faceset, out_dir)
    report = {
        "source": data.source,
        "path": None if data.source == "synthetic" else str(data.path),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_reading": round(seconds_read, 2),
        "counts": class_counts(faceset),
        **notes,
    }
    write_json(report_path, report)
    log.info(
        "ingested %s in %.1f s: %s",
        data.source,
        report["seconds"],
        {s: c["total"] for s, c in report["counts"].items()},
    )
    return report
