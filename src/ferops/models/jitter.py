"""Training-time augmentation that runs inside the model, on whatever device trains it.

The OpenCV batch feeder (`ferops.training.augment`) warps faces on CPU threads: fine for a CPU
run, but a GPU would wait for it. `FaceJitter` does the augmentations that matter for FER2013 with
integer gathers and elementwise ops only (no resampling), so on a GPU it costs next to nothing:
optionally a random crop x crop window scaled back to 48x48 (the random-crop training of the
strongest from-scratch models), a random shift of up to `strength * 4` pixels (their "pad and
random crop" at full resolution), a horizontal flip, brightness and contrast jitter and random
erasing. At inference it is the identity, except that a model trained on crops looks at the
centre window, the view it was trained on; the model's input stays a plain face either way
(evaluate's ten-crop test-time augmentation moves the face so that window meets its corners).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

MAX_SHIFT = 4  # pixels at strength 1: a 40x40 window moving over the 48x48 face


def window_index(crop: int, size: int) -> np.ndarray:
    """For each of `size` output pixels, the pixel of a `crop`-wide window it takes (nearest
    neighbour): a window scaled to full size by integer gathers, the same in training and TTA."""
    return np.minimum(((np.arange(size) + 0.5) * crop / size).astype(np.int32), crop - 1)


def training_crop(model: keras.Model) -> int | None:
    """The crop size `model` was trained with (its FaceJitter layer's), or None."""
    for layer in model.layers:
        if isinstance(layer, FaceJitter) and layer.crop < int(model.inputs[0].shape[1]):
            return layer.crop
    return None


@keras.saving.register_keras_serializable(package="ferops")
class FaceJitter(layers.Layer):
    """Random crop (scaled back to full size), shift (edge-replicated), flip, brightness,
    contrast and erasing of (N, H, W, 1) faces in [0, 1]; unless `training`, the identity, or
    the centre crop when cropping."""

    def __init__(
        self, strength: float = 1.0, seed: int | None = None, crop: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.strength = strength
        self.seed = seed
        self.crop = crop or 0  # 0, or the input's size: no crop
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, faces, training: bool = False):
        n, h, w = ops.shape(faces)[0], faces.shape[1], faces.shape[2]
        if 0 < self.crop < h:
            faces = self._crop(faces, n, h, w) if training else self._centre(faces, h, w)
        if not training or self.strength <= 0:
            return faces
        s, gen = self.strength, self.generator
        faces = self._shift(faces, n, h, w, round(MAX_SHIFT * s))
        flip = keras.random.uniform((n, 1, 1, 1), seed=gen) < 0.5
        faces = ops.where(flip, ops.flip(faces, axis=2), faces)
        mean = ops.mean(faces, axis=(1, 2, 3), keepdims=True)
        contrast = 1 + keras.random.uniform((n, 1, 1, 1), -0.25 * s, 0.25 * s, seed=gen)
        brightness = keras.random.uniform((n, 1, 1, 1), -0.08 * s, 0.08 * s, seed=gen)
        faces = (faces - mean) * ops.cast(contrast, faces.dtype) + mean
        faces = faces + ops.cast(brightness, faces.dtype)
        faces = ops.where(self._erasing_mask(n, h, w, 0.5 * s), ops.zeros_like(faces) + 0.5, faces)
        return ops.clip(faces, 0.0, 1.0)

    def _crop(self, faces, n, h: int, w: int):
        """Each face's own random crop x crop window, scaled back to h x w."""
        gen = self.generator
        top = keras.random.randint((n, 1), 0, h - self.crop + 1, seed=gen)
        left = keras.random.randint((n, 1), 0, w - self.crop + 1, seed=gen)
        rows = top + ops.convert_to_tensor(window_index(self.crop, h))[None, :]  # (N, H)
        cols = left + ops.convert_to_tensor(window_index(self.crop, w))[None, :]  # (N, W)
        return self._gather(faces, rows, cols, n, h, w)

    def _centre(self, faces, h: int, w: int):
        """The centre crop x crop window, scaled back to h x w: constant indices."""
        rows = (h - self.crop) // 2 + window_index(self.crop, h)
        cols = (w - self.crop) // 2 + window_index(self.crop, w)
        return ops.take(ops.take(faces, ops.convert_to_tensor(rows), axis=1), cols, axis=2)

    def _gather(self, faces, rows, cols, n, h: int, w: int):
        """faces[i, rows[i, y], cols[i, x]] for every face i."""
        faces = ops.take_along_axis(
            faces, ops.broadcast_to(rows[:, :, None, None], (n, h, w, 1)), 1
        )
        return ops.take_along_axis(faces, ops.broadcast_to(cols[:, None, :, None], (n, h, w, 1)), 2)

    def _shift(self, faces, n, h: int, w: int, pixels: int):
        """Move each face by its own (dy, dx) in [-pixels, pixels], repeating the edge rows."""
        if pixels < 1:
            return faces
        gen = self.generator
        dy = keras.random.randint((n, 1), -pixels, pixels + 1, seed=gen)
        dx = keras.random.randint((n, 1), -pixels, pixels + 1, seed=gen)
        rows = ops.clip(ops.arange(h)[None, :] + dy, 0, h - 1)  # (N, H)
        cols = ops.clip(ops.arange(w)[None, :] + dx, 0, w - 1)  # (N, W)
        return self._gather(faces, rows, cols, n, h, w)

    def _erasing_mask(self, n, h: int, w: int, probability: float):
        """A random rectangle (a sixth to a third of each side) per face, for `probability` of
        the faces: the model cannot lean on one region (an eye, the mouth) alone."""
        gen = self.generator
        size_y = keras.random.randint((n, 1, 1, 1), h // 6, h // 3 + 1, seed=gen)
        size_x = keras.random.randint((n, 1, 1, 1), w // 6, w // 3 + 1, seed=gen)
        top = keras.random.randint((n, 1, 1, 1), 0, h, seed=gen)
        left = keras.random.randint((n, 1, 1, 1), 0, w, seed=gen)
        y = ops.arange(h)[None, :, None, None]
        x = ops.arange(w)[None, None, :, None]
        inside = (y >= top) & (y < top + size_y) & (x >= left) & (x < left + size_x)
        chosen = keras.random.uniform((n, 1, 1, 1), seed=gen) < probability
        return inside & chosen

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "strength": self.strength,
            "seed": self.seed,
            "crop": self.crop,
        }
