"""Preprocess stage: contrast normalisation, and removal of leaked duplicates and blank faces.

`normalise_contrast` is the single definition of the pixels a model sees; serving calls it too,
so training and serving cannot drift apart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferops.artifacts import write_json
from ferops.config import SPLITS, PreprocessConfig
from ferops.data.faceset import FaceSet, face_sha1, load_faceset, save_faceset
from ferops.data.ingest import class_counts

log = logging.getLogger(__name__)

# Which copy of a duplicated image survives: test is what we report on, so it keeps its
# images; val comes next; train gives way (a train copy of a test image is leakage).
_KEEP_PRIORITY = ("test", "val", "train")


def normalise_contrast(faces: np.ndarray, method: str, *, clahe_clip: float = 2.0) -> np.ndarray:
    """Return uint8 faces (N, 48, 48) with contrast normalised by `method`.

    `none` leaves pixels as they are; `equalize` is global histogram equalisation; `clahe`
    is contrast-limited adaptive equalisation on an 8x8 grid (6x6-pixel tiles), which evens
    out side lighting without blowing up noise in flat regions.
    """
    if method == "none":
        return faces
    out = np.empty_like(faces)
    if method == "equalize":
        for i, face in enumerate(faces):
            out[i] = cv2.equalizeHist(face)
        return out
    if method == "clahe":
        clahe = cv2.createCLAHE(clipLimit=clahe_clip, tileGridSize=(8, 8))
        for i, face in enumerate(faces):
            out[i] = clahe.apply(face)
        return out
    raise ValueError(f"unknown contrast method {method!r}; expected none, equalize or clahe")


def find_removals(faceset: FaceSet, *, min_std: float) -> list[dict[str, Any]]:
    """List the images to drop, each with its reason: blank, or duplicate of a kept image."""
    removals: list[dict[str, Any]] = []
    kept_at: dict[str, tuple[str, int]] = {}
    for split in _KEEP_PRIORITY:
        part = faceset[split]
        stds = part.x.reshape(len(part), -1).std(axis=1)
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
    cleaned: FaceSet = {}
    for split in SPLITS:
        keep = np.ones(len(faceset[split]), dtype=bool)
        keep[[r["index"] for r in removals if r["split"] == split]] = False
        part = faceset[split].take(keep)
        part.x = normalise_contrast(part.x, config.contrast, clahe_clip=config.clahe_clip)
        cleaned[split] = part
    return cleaned, removals


def preprocess(
    config: PreprocessConfig, *, in_dir: Path, out_dir: Path, report_path: Path
) -> dict[str, Any]:
    """Clean data/interim into data/processed and list every removal in the report."""
    faceset = load_faceset(in_dir)
    cleaned, removals = clean_faceset(faceset, config)
    save_faceset(cleaned, out_dir)
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
    write_json(report_path, report)
    log.info("preprocessed: removed %d image(s) %s", len(removals), reasons)
    return report
