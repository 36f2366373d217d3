"""Preprocess stage: contrast normalisation, and removal of leaked duplicates and blank faces.

Contrast is normalised by `Preprocessing.apply` (ferops.imaging.contrast), the one definition
of the pixels a model sees; every runtime applies it too, so training and serving cannot drift.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ferops.data.faceset import FaceSet, face_sha1, load_faceset, save_faceset, split_names
from ferops.data.sources import class_counts
from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.kernel.config import Params, PreprocessConfig
from ferops.kernel.files import atomic_path, write_json
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)

# Which copy of a duplicated image survives: test is what we report on, so it keeps its
# images; val comes next; train gives way (a train copy of a test image is leakage).
_KEEP_PRIORITY = ("test", "val", "production", "train")


def find_removals(faceset: FaceSet, *, min_std: float) -> list[dict[str, Any]]:
    """List the images to drop, each with its reason: blank, or duplicate of a kept image."""
    removals: list[dict[str, Any]] = []
    kept_at: dict[str, tuple[str, int]] = {}
    for split in (s for s in _KEEP_PRIORITY if s in faceset):
        part = faceset[split]
        stds = part.x.std(axis=(1, 2))  # (N,) even for an empty production slice
        for index, sha1 in enumerate(face_sha1(part.x)):
            entry = {
                "split": split,
                "index": index,
                "source": part.sources[index],
                "sha1": sha1,
                "label": int(part.y[index]),
            }
            if stds[index] < min_std:
                removals.append(
                    {
                        **entry,
                        "reason": "blank",
                        "detail": f"pixel std {stds[index]:.2f} < {min_std}",
                    }
                )
                continue
            if sha1 in kept_at:
                other_split, other_index = kept_at[sha1]
                other = faceset[other_split]
                reason = (
                    "duplicate within split"
                    if other_split == split
                    else (f"duplicate of a {other_split} image")
                )
                label_note = (
                    "same label"
                    if other.y[other_index] == part.y[index]
                    else (f"label differs: {int(other.y[other_index])}")
                )
                removals.append(
                    {
                        **entry,
                        "reason": reason,
                        "detail": f"kept {other.sources[other_index]} ({label_note})",
                    }
                )
                continue
            kept_at[sha1] = (split, index)
    return removals


def clean_faceset(
    faceset: FaceSet, config: PreprocessConfig
) -> tuple[FaceSet, list[dict[str, Any]]]:
    """Return the face set without blank or duplicated images, contrast-normalised."""
    removals = find_removals(faceset, min_std=config.min_std)
    preprocessing = Preprocessing.from_config(config)
    cleaned: FaceSet = {}
    for split in split_names(faceset):
        keep = np.ones(len(faceset[split]), dtype=bool)
        keep[[r["index"] for r in removals if r["split"] == split]] = False
        part = faceset[split].take(keep)
        part.x = preprocessing.apply(part.x)
        cleaned[split] = part
    return cleaned, removals


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Drop blank and duplicated faces and normalise contrast: data/interim into
    data/processed, every removal listed in reports/preprocess.json."""
    config = params.preprocess
    faceset = load_faceset(layout.interim)
    cleaned, removals = clean_faceset(faceset, config)
    save_faceset(cleaned, layout.processed)
    with atomic_path(layout.processed / PREPROCESSING_FILE) as staged:  # travels on with the model
        Preprocessing.from_config(config).save(staged)
    reasons: dict[str, int] = {}
    for removal in removals:
        key = removal["reason"]
        reasons[key] = reasons.get(key, 0) + 1
    report = {
        "contrast": config.contrast,
        "counts_before": class_counts(faceset),
        "counts_after": class_counts(cleaned),
        "removed_by_reason": reasons,
        "removed": removals,
    }
    write_json(layout.preprocess_report, report)
    log.info("preprocessed: removed %d image(s) %s", len(removals), reasons)
    return report
