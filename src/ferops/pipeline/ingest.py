"""Ingest stage: read the configured source and write data/interim (the raw face set)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ferops.data.faceset import PRODUCTION, FaceSet, Split, save_faceset
from ferops.data.sources import class_counts, read_source
from ferops.feedback.review import TRAIN, feedback_splits
from ferops.kernel.config import Params
from ferops.kernel.files import write_json
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Read data.source (synthetic, fer2013-csv or image-folder) and the imported feedback,
    then write data/interim and reports/ingest.json.

    Reading happens before any write, so a bad input leaves the previous output untouched.
    """
    data = params.data
    started = time.perf_counter()
    faceset, notes = read_source(data, seed=params.seed)
    if layout.feedback.is_dir():
        faceset = with_feedback(faceset, layout.feedback)
    seconds_read = time.perf_counter() - started
    save_faceset(faceset, layout.interim)
    report = {
        "source": data.source,
        "path": None if data.source == "synthetic" else str(data.path),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_reading": round(seconds_read, 2),
        "counts": class_counts(faceset),
        **notes,
    }
    write_json(layout.ingest_report, report)
    log.info(
        "ingested %s in %.1f s: %s",
        data.source,
        report["seconds"],
        {s: c["total"] for s, c in report["counts"].items()},
    )
    return report


def with_feedback(faceset: FaceSet, feedback: Path) -> FaceSet:
    """Reviewed production faces joined to train, and their held-out share as the
    production split (always present once data/feedback exists, empty or not)."""
    parts = feedback_splits(feedback)
    train = faceset["train"]
    extra = parts[TRAIN]
    merged = Split(
        np.concatenate([train.x, extra.x]),
        np.concatenate([train.y, extra.y]).astype(np.int8),
        [*train.sources, *extra.sources],
    )
    if len(extra) or len(parts[PRODUCTION]):
        log.info(
            "feedback: %d reviewed face(s) into train, %d in the production slice",
            len(extra),
            len(parts[PRODUCTION]),
        )
    return {**faceset, "train": merged, PRODUCTION: parts[PRODUCTION]}
