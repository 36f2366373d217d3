"""Synthetic photos: generated faces pasted onto a face-free background, at known places.

The benchmarks (detection, inference) and the tests use them wherever a real photo or video
would otherwise have to be downloaded. Not part of the package: ferops itself never makes
one. The benchmark scripts import it as `scenes` (their folder is on the path when run as
`python benchmarks/NAME.py`), the tests as `benchmarks.scenes`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ferops.imaging.faces import Box


def scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A face-free BGR background: a lighting gradient with texture."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 190, width)[None, :] + np.linspace(-20, 20, height)[:, None]
    grey = np.clip(ramp + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def paste(image: np.ndarray, face: np.ndarray, x: int, y: int, size: int = 120) -> Box:
    """Paste a 48x48 grey face, enlarged to `size`, at (x, y) in place; return where it went."""
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    image[y : y + size, x : x + size] = big[..., None]
    return Box(x, y, size, size)
