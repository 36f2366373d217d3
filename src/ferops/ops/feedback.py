"""`ferops feedback export|import`: the review loop between the prediction log and the data.

Import checks the whole review before it writes (ferops.feedback.review), then hands the new
batch to DVC (`dvc add`), so the data version that trains the next model names the reviewed
faces it learned from; the ingest stage depends on data/feedback and reruns.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ferops.data.faceset import load_faceset
from ferops.feedback.review import check_new, export_for_review, read_review, write_batch
from ferops.kernel.config import Params
from ferops.kernel.errors import DataError
from ferops.kernel.layout import Layout
from ferops.ops.monitor import Window, log_folder
from ferops.prediction_log.store import read_log


def export(layout: Layout, out: Path, window: Window, log_root: str | None = None) -> int:
    """Write the window's kept faces for review; return how many."""
    folder = log_folder(layout, log_root)
    answers = read_log(folder, since=window.since, until=window.until)
    if window.last is not None:
        answers = answers.tail(window.last)
    return export_for_review(answers, out)


def import_review(params: Params, layout: Layout, folder: Path, *, track: bool = True) -> Path:
    """Check a reviewed export and add it as a feedback batch; return the batch folder."""
    if not (layout.interim / "manifest.parquet").is_file():
        raise DataError(
            f"{layout.interim}: not found; run `dvc repro` first, so reviewed faces can be "
            "checked against the val and test faces"
        )
    reviewed = read_review(folder)
    if not len(reviewed.faces):
        raise DataError(f"{folder}: the manifest lists no faces; nothing imported")
    check_new(reviewed, load_faceset(layout.interim), layout.feedback)
    batch = write_batch(reviewed, layout.feedback, params.feedback.holdout_fraction)
    if track and (layout.root / ".dvc").is_dir():
        dvc_add(layout.root, batch)
    return batch


def dvc_add(root: Path, batch: Path) -> None:
    """Track the batch with DVC (its .dvc file is what git records); on failure the batch is
    left in place and the message says how to track it by hand."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "add", str(batch.relative_to(root))],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DataError(
            f"{batch}: imported, but `dvc add` failed ({result.stderr.strip().splitlines()[-1:]}); "
            f"run `dvc add {batch.relative_to(root)}` yourself"
        )
