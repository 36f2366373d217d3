"""One decoder for every image a user hands us (any format Pillow reads: 8, 16 and 32-bit,
float, palette, alpha, CMYK, EXIF-rotated), used by ingest, serving and `ferops predict`, and
the one way an image becomes a 48x48 grey face."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferops.kernel.errors import DataError

FACE_SHAPE = (48, 48)


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can decode, or one too large to decode safely."""


class TooManyPixels(UnreadableImage):
    """The header claims more pixels than allowed; nothing was decoded."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"{width}x{height} pixels exceeds {limit} (decompression bomb?)")
        self.pixels = width * height


_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def decode_grey(source: Any, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file or stream to uint8 grayscale; refuse more than `max_pixels`
    before decoding (decompression bombs). Raises UnreadableImage saying why."""
    return _decode(source, "L", max_pixels)


def decode_rgb(source: Any, *, max_pixels: int | None = None) -> np.ndarray:
    """The same decoding as decode_grey, in colour: uint8 (height, width, 3) RGB."""
    return _decode(source, "RGB", max_pixels)


def _decode(source: Any, mode: str, max_pixels: int | None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise TooManyPixels(width, height, max_pixels)
                upright = ImageOps.exif_transpose(image)  # as the camera held it
                return np.asarray(eight_bit(upright).convert(mode), dtype=np.uint8)
    except UnreadableImage:
        raise
    except _DECODE_ERRORS as exc:
        raise UnreadableImage(str(exc)) from exc


def eight_bit(image: Image.Image) -> Image.Image:
    """8 bits per channel, scaled rather than clipped: Pillow's own convert() clips 16-bit and
    32-bit grey to 255 (a 16-bit face would come out almost white). Floats are read as 0..1
    when none exceeds 1, else as 0..255. Palette, alpha and CMYK images convert() rightly."""
    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if levels.max(initial=0) <= 65535 else float(levels.max())
        return Image.fromarray(np.round(levels * (255.0 / top)).astype(np.uint8))
    if image.mode == "F":
        levels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if levels.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(levels * scale), 0, 255).astype(np.uint8))
    return image


def load_face_image(path: Path) -> np.ndarray:
    """Decode any image file to a uint8 48x48 grayscale face; DataError names a bad file."""
    try:
        return fit_face(decode_grey(path))
    except UnreadableImage as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc})") from exc


def fit_face(grey: np.ndarray) -> np.ndarray:
    """Crop a grayscale image to its centre square and resize it to 48x48."""
    height, width = grey.shape
    if (height, width) == FACE_SHAPE:
        return grey
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = grey[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > FACE_SHAPE[0] else cv2.INTER_CUBIC
    return cv2.resize(square, FACE_SHAPE[::-1], interpolation=interpolation)
