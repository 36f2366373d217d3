"""The in-memory face set and its on-disk form: the contract between pipeline stages.

A split is stored as `{split}.npz` with `x` uint8 (N, 48, 48) and `y` int8 (N,) in FER2013
label order; `manifest.parquet` beside it has one row per image (split, index, label,
emotion, source, sha1) so any image can be traced back to its file or CSV row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ferops.imaging.decode import FACE_SHAPE
from ferops.kernel.config import SPLITS
from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES
from ferops.kernel.errors import DataError
from ferops.kernel.files import atomic_path, write_npz

MANIFEST = "manifest.parquet"
# Reviewed production faces held out of training (ferops feedback): evaluate scores them apart.
# Optional: a face set without feedback has no such split, and older folders lack the file.
PRODUCTION = "production"


def split_names(faceset: FaceSet) -> list[str]:
    """train, val, test, then the production slice where the face set has one."""
    return [*SPLITS, *([PRODUCTION] if PRODUCTION in faceset else [])]


@dataclass
class Split:
    """Faces of one split with their labels and where each came from."""

    x: np.ndarray  # uint8 (N, 48, 48)
    y: np.ndarray  # int8 (N,)
    sources: list[str]

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.shape[1:] != FACE_SHAPE:
            raise ValueError(f"faces must be uint8 (N, 48, 48), got {self.x.dtype} {self.x.shape}")
        if not (len(self.x) == len(self.y) == len(self.sources)):
            raise ValueError("faces, labels and sources differ in length")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= NUM_CLASSES):
            raise ValueError("labels must lie in 0..6")

    def __len__(self) -> int:
        return len(self.y)

    def content_sha1(self) -> str:
        """The identity of the split's pixels and labels, whatever file holds them."""
        return hashlib.sha1(self.x.tobytes() + self.y.astype(np.int8).tobytes()).hexdigest()

    def take(self, keep: np.ndarray) -> Split:
        """Return the split restricted to the indices (or boolean mask) `keep`."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Split(self.x[idx], self.y[idx], [self.sources[i] for i in idx])

    def sample(self, fraction: float, seed: int) -> Split:
        """A seeded random `fraction` of each class (at least one face of each), in the
        original order: a smaller split with the same class balance."""
        rng = np.random.default_rng(seed)
        keep = [
            rng.choice(members, size=max(1, round(fraction * len(members))), replace=False)
            for members in (np.flatnonzero(self.y == c) for c in range(NUM_CLASSES))
            if len(members)
        ]
        return self.take(np.sort(np.concatenate(keep)))


FaceSet = dict[str, Split]


def face_sha1(faces: np.ndarray) -> list[str]:
    """Return the sha1 of each face's pixel bytes: identical pixels, identical hash."""
    flat = np.ascontiguousarray(faces).reshape(len(faces), int(np.prod(faces.shape[1:])))
    return [hashlib.sha1(row.tobytes()).hexdigest() for row in flat]


def manifest_of(faceset: FaceSet) -> pd.DataFrame:
    """One row per image: split, index within split, label, emotion name, source, sha1."""
    frames = []
    for split in split_names(faceset):
        part = faceset[split]
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "index": np.arange(len(part), dtype=np.int64),
                    "label": part.y.astype(np.int64),
                    "emotion": [EMOTIONS[label] for label in part.y],
                    "source": part.sources,
                    "sha1": face_sha1(part.x),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def check_not_empty(faceset: FaceSet, origin: str) -> None:
    """Raise DataError naming every split that holds no image."""
    empty = [split for split in SPLITS if len(faceset.get(split, ())) == 0]
    if empty:
        raise DataError(f"{origin}: split(s) {', '.join(empty)} hold no images")


def save_faceset(faceset: FaceSet, directory: Path) -> pd.DataFrame:
    """Write every split and the manifest; each file is replaced only once fully written."""
    manifest = manifest_of(faceset)
    for split in split_names(faceset):
        write_npz(directory / f"{split}.npz", x=faceset[split].x, y=faceset[split].y)
    with atomic_path(directory / MANIFEST) as tmp:
        manifest.to_parquet(tmp, index=False)
    return manifest


def load_faceset(directory: Path) -> FaceSet:
    """Read the splits and sources written by `save_faceset`, checking the contract."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: not found; run the stage that writes {directory}")
    manifest = pd.read_parquet(manifest_path)
    faceset: FaceSet = {}
    optional = [PRODUCTION] if (directory / f"{PRODUCTION}.npz").is_file() else []
    for split in [*SPLITS, *optional]:
        path = directory / f"{split}.npz"
        if not path.is_file():
            raise DataError(f"{path}: not found")
        with np.load(path) as arrays:
            x, y = arrays["x"], arrays["y"]
        sources = manifest.loc[manifest["split"] == split, "source"].tolist()
        try:
            faceset[split] = Split(x, y, sources)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from exc
    return faceset
