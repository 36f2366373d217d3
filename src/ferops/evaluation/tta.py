"""Test-time augmentation: a model's answers averaged over views of each face that training
taught it to expect (mirror images, small shifts, ten crops)."""

from __future__ import annotations

from typing import Any

import numpy as np

TTA_SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))  # (dx, dy) in pixels


def tta(
    model: Any, faces: np.ndarray, probabilities: np.ndarray, *, shifts: bool = False
) -> np.ndarray:
    """Mean probabilities over each face and its horizontal mirror (faces are near-symmetric)
    and, with `shifts`, the face moved 2 px each way: the views training augmentation taught
    the model to expect. `probabilities` are the model's on the faces as they are."""
    return np.mean([probabilities, *view_probabilities(model, faces, shifts=shifts)], axis=0)


def view_probabilities(model: Any, faces: np.ndarray, *, shifts: bool) -> list[np.ndarray]:
    """The model's probabilities on the mirror images, then (with `shifts`) on each shift."""
    views = [faces[:, :, ::-1]]
    if shifts:
        views += [shifted(faces, dx, dy) for dx, dy in TTA_SHIFTS]
    return [model.predict(np.ascontiguousarray(v), batch_size=256, verbose=0) for v in views]


def ten_crops(faces: np.ndarray, crop: int) -> list[np.ndarray]:
    """Ten views of `faces` for a model trained on random crop x crop windows: moved so that
    the window it looks at (the centre one) covers each corner in turn, as they are, then
    mirrored. The classic ten-crop test (Krizhevsky et al., 2012), the input kept whole."""
    m = (faces.shape[1] - crop) // 2  # how far the centre window is from each edge
    moves = [(0, 0), (m, m), (-m, m), (m, -m), (-m, -m)]
    views = [faces if (dx, dy) == (0, 0) else shifted(faces, dx, dy) for dx, dy in moves]
    return [np.ascontiguousarray(v) for v in views + [v[:, :, ::-1] for v in views]]


def shifted(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Faces (N, H, W[, 1]) moved dx px right and dy px down; edge pixels fill the gap."""
    pad = max(abs(dx), abs(dy))
    widths = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (faces.ndim - 3)
    padded = np.pad(faces, widths, mode="edge")
    height, width = faces.shape[1:3]
    return padded[:, pad - dy : pad - dy + height, pad - dx : pad - dx + width]
