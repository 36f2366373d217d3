"""Ingest the real FER2013 image folder when FER2013_DIR points at one (skipped otherwise)."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from ferops.data.image_folder import read_image_folder

FER2013_DIR = os.environ.get("FER2013_DIR")


@pytest.mark.skipif(not FER2013_DIR, reason="set FER2013_DIR to a FER2013 image folder")
def test_the_real_fer2013_folder_ingests_fast_and_whole():
    started = time.perf_counter()
    faceset, report = read_image_folder(Path(FER2013_DIR))
    seconds = time.perf_counter() - started
    sizes = {split: len(part) for split, part in faceset.items()}
    assert sizes == {"train": 28709, "val": 3589, "test": 3589}
    assert all(np.bincount(part.y, minlength=7).min() > 0 for part in faceset.values())
    assert not report.skipped
    assert seconds < 60
