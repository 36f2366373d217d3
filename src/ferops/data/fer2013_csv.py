"""Kaggle's fer2013.csv: `emotion,pixels,Usage`, 2,304 space-separated grey levels per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ferops.data.faceset import FACE_SHAPE, FaceSet, Split, check_not_empty
from ferops.kernel.emotions import NUM_CLASSES
from ferops.kernel.errors import DataError

USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
_PIXELS = FACE_SHAPE[0] * FACE_SHAPE[1]
_COLUMNS = ("emotion", "pixels", "Usage")


def read_fer2013_csv(path: Path) -> FaceSet:
    """Return the train/val/test splits of a fer2013.csv; any bad row is an error naming it."""
    if not path.is_file():
        raise DataError(f"{path}: fer2013 CSV not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected header emotion,pixels,Usage"
        )
    # Line numbers as a text editor shows them: the header is line 1.
    lines = np.arange(len(table)) + 2
    labels = _labels(table["emotion"], lines, path)
    splits = _splits(table["Usage"], lines, path)
    faces = _pixels(table["pixels"], lines, path)
    faceset: FaceSet = {}
    for split in USAGE_TO_SPLIT.values():
        rows = np.flatnonzero(splits == split)
        sources = [f"{path.name}:line {line}" for line in lines[rows]]
        faceset[split] = Split(faces[rows], labels[rows], sources)
    check_not_empty(faceset, str(path))
    return faceset


def _labels(column: pd.Series, lines: np.ndarray, path: Path) -> np.ndarray:
    codes = pd.to_numeric(column.str.strip(), errors="coerce")
    bad = ~codes.isin(range(NUM_CLASSES))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {lines[i]}, field emotion: {column.iloc[i]!r} is not an emotion code "
            f"0..6 ({int(bad.sum())} such row(s))"
        )
    return codes.to_numpy(dtype=np.int8)


def _splits(column: pd.Series, lines: np.ndarray, path: Path) -> np.ndarray:
    splits = column.str.strip().map(USAGE_TO_SPLIT)
    bad = splits.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {lines[i]}, field Usage: {column.iloc[i]!r} is not one of "
            f"{', '.join(USAGE_TO_SPLIT)} ({int(bad.sum())} such row(s))"
        )
    return splits.to_numpy(dtype=object)


def _pixels(column: pd.Series, lines: np.ndarray, path: Path) -> np.ndarray:
    faces = np.empty((len(column), _PIXELS), dtype=np.uint8)
    for i, text in enumerate(column):
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")  # C parser: 10x faster
        except ValueError:
            values = None
        if values is None or len(values) != _PIXELS:
            found = (
                "values that are not whole numbers" if values is None else (f"{len(values)} values")
            )
            raise DataError(
                f"{path}: line {lines[i]}, field pixels: {found}, expected {_PIXELS} whole "
                f"numbers 0..255 (48x48)"
            )
        if values.min() < 0 or values.max() > 255:
            raise DataError(
                f"{path}: line {lines[i]}, field pixels: values must lie in 0..255, found "
                f"{values.min()}..{values.max()}"
            )
        faces[i] = values
    return faces.reshape(-1, *FACE_SHAPE)
