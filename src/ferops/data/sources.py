"""The configured data source (data.source) read into a face set, whatever its kind."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ferops.data.faceset import FaceSet, Split, split_names
from ferops.data.fer2013_csv import read_fer2013_csv
from ferops.data.image_folder import read_image_folder
from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.kernel.config import SPLITS, DataConfig
from ferops.kernel.emotions import EMOTIONS

log = logging.getLogger(__name__)


def read_source(data: DataConfig, *, seed: int) -> tuple[FaceSet, dict[str, Any]]:
    """Return the face set of the configured source and what the reader had to say about it."""
    if data.source == "synthetic":
        return synthetic_faceset(data, seed=seed), {}
    if data.source == "fer2013-csv":
        return read_fer2013_csv(data.path), {}
    faceset, report = read_image_folder(
        data.path, on_bad_image=data.on_bad_image, val_fraction=data.val_fraction, seed=seed
    )
    return faceset, {
        "val_carved_from_train": report.val_carved_from_train,
        "skipped": report.skipped,
        "ignored": report.ignored,
    }


def synthetic_faceset(data: DataConfig, *, seed: int) -> FaceSet:
    """Generate the synthetic splits; each split has its own seeded stream, so sizes are
    independent: growing train does not change test."""
    sizes = {
        "train": data.synthetic.train_per_class,
        "val": data.synthetic.val_per_class,
        "test": data.synthetic.test_per_class,
    }
    faceset: FaceSet = {}
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, number])
        labels = balanced_labels(sizes[split], rng=rng)
        faces = generate_faces(labels, rng=rng, difficulty=data.synthetic.difficulty)
        sources = [f"synthetic:{split}:{i}" for i in range(len(labels))]
        faceset[split] = Split(faces, labels, sources)
    return faceset


def class_counts(faceset: FaceSet) -> dict[str, dict[str, int]]:
    """Images per emotion and in total, per split."""
    counts: dict[str, dict[str, int]] = {}
    for split in split_names(faceset):
        per_class = np.bincount(faceset[split].y, minlength=len(EMOTIONS))
        counts[split] = {name: int(n) for name, n in zip(EMOTIONS, per_class, strict=True)}
        counts[split]["total"] = len(faceset[split])
    return counts
