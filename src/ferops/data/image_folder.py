"""Image folders: ROOT/{train,val,test}/<emotion>/*.{jpg,png,...}, as Kaggle's FER2013 download.

Any size or colour is converted to 48x48 grayscale (centre square crop, then area resize). If
ROOT has no val/ folder, val is carved from train, stratified by emotion and seeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferops.data.faceset import FACE_SHAPE, FaceSet, Split, check_not_empty
from ferops.imaging.decode import load_face_image
from ferops.kernel.emotions import emotion_label
from ferops.kernel.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "test": "test",
    "privatetest": "test",
}


@dataclass
class FolderReport:
    """Files that were not ingested, each with the reason: nothing is dropped silently."""

    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    val_carved_from_train: bool = False


def read_image_folder(
    root: Path, *, on_bad_image: str = "error", val_fraction: float = 0.1, seed: int = 0
) -> tuple[FaceSet, FolderReport]:
    """Return the splits found under `root` and a report of skipped or ignored files."""
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    report = FolderReport()
    split_dirs = _split_dirs(root)
    faceset: FaceSet = {}
    for split, directory in split_dirs.items():
        faceset[split] = _read_split(directory, root, on_bad_image, report)
    if "val" not in faceset and "train" in faceset and len(faceset["train"]):
        faceset["train"], faceset["val"] = _carve_val(faceset["train"], val_fraction, seed)
        report.val_carved_from_train = True
    check_not_empty(faceset, str(root))
    return faceset, report


def _split_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        split = _SPLIT_NAMES.get(child.name.lower())
        if split is None:
            raise DataError(
                f"{child}: unknown split folder; expected train, val (or validation) and test"
            )
        if split in found:
            raise DataError(f"{child}: a second folder for split {split} (first: {found[split]})")
        found[split] = child
    if "train" not in found or "test" not in found:
        raise DataError(
            f"{root}: needs train/ and test/ folders (val/ optional), found "
            f"{', '.join(p.name for p in found.values()) or 'none'}"
        )
    return found


def _read_split(directory: Path, root: Path, on_bad_image: str, report: FolderReport) -> Split:
    faces: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    for class_dir in sorted(p for p in directory.iterdir() if not p.name.startswith(".")):
        if not class_dir.is_dir():
            report.ignored.append({"file": str(class_dir), "reason": "not inside a class folder"})
            continue
        label = emotion_label(class_dir.name, where=str(class_dir))
        for path in sorted(class_dir.iterdir()):
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                report.ignored.append({"file": str(path), "reason": "not an image file"})
                continue
            try:
                face = load_face_image(path)
            except DataError as exc:
                if on_bad_image == "error":
                    raise
                report.skipped.append({"file": str(path), "reason": str(exc)})
                log.warning("skipped %s", exc)
                continue
            faces.append(face)
            labels.append(label)
            sources.append(str(path.relative_to(root)))
    if report.ignored:
        log.warning(
            "ignored %d non-image entries (listed in the ingest report)", len(report.ignored)
        )
    x = np.stack(faces) if faces else np.empty((0, *FACE_SHAPE), dtype=np.uint8)
    return Split(x, np.asarray(labels, dtype=np.int8), sources)


def _carve_val(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split  # 1 s to import; most runs never split

    indices = np.arange(len(train))
    counts = np.bincount(train.y)
    stratify = train.y if counts[counts > 0].min() >= 2 else None
    keep, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=stratify)
    return train.take(np.sort(keep)), train.take(np.sort(held))
