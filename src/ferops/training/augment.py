"""Training-time augmentation on the CPU with OpenCV, batch by batch in worker threads.

One affine warp per face (rotation, zoom, shift), a horizontal flip, brightness and contrast
jitter and random erasing; optionally mixup. It is a Keras PyDataset, so it feeds any backend;
it replaced the in-model Keras layers for FER2013 runs because their resampling ran orders of
magnitude slower on JAX/GPU (and three resamples a face on CPU). Batch i of epoch e depends only on
(seed, e, i), so runs repeat whatever the thread timing.
"""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np

from ferops.kernel.model_spec import FACE_SIZE


def augment_faces(faces: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """uint8 (N, 48, 48) → augmented copies; strength 1.0 is the FER2013 profile's."""
    s = strength
    out = np.empty_like(faces)
    for k, face in enumerate(faces):
        angle = rng.uniform(-15, 15) * s
        scale = 1 + rng.uniform(-0.15, 0.15) * s
        shift = rng.uniform(-0.1, 0.1, size=2) * FACE_SIZE * s
        matrix = cv2.getRotationMatrix2D((FACE_SIZE / 2, FACE_SIZE / 2), angle, scale)
        matrix[:, 2] += shift
        warped = cv2.warpAffine(
            face,
            matrix,
            (FACE_SIZE, FACE_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        ).astype(np.float32)
        if rng.random() < 0.5:
            warped = warped[:, ::-1]
        mean = warped.mean()
        warped = (warped - mean) * (1 + rng.uniform(-0.25, 0.25) * s) + mean
        warped += rng.uniform(-20, 20) * s
        if rng.random() < 0.5 * s:  # random erasing: a patch of 2-20% of the face
            area = rng.uniform(0.02, 0.2) * FACE_SIZE * FACE_SIZE
            ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            h = min(FACE_SIZE, round(math.sqrt(area * ratio)))
            w = min(FACE_SIZE, round(math.sqrt(area / ratio)))
            top, left = rng.integers(0, FACE_SIZE - h + 1), rng.integers(0, FACE_SIZE - w + 1)
            warped[top : top + h, left : left + w] = rng.uniform(0, 255)
        out[k] = np.clip(warped, 0, 255).astype(np.uint8)
    return out


def mixup(
    faces: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None,
    rng: np.random.Generator,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Blend each face (and its label) with another face of the batch, by a weight drawn per
    face from Beta(alpha, alpha): softer decision boundaries, a regulariser for long runs
    (Zhang et al., 2018)."""
    lam = rng.beta(alpha, alpha, size=len(faces)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)  # the face keeps the larger share: its own label dominates
    partner = rng.permutation(len(faces))
    mixed = lam[:, None, None] * faces + (1 - lam[:, None, None]) * faces[partner]
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]
    mixed_weights = None if weights is None else lam * weights + (1 - lam) * weights[partner]
    return mixed.astype(np.float32), mixed_targets.astype(np.float32), mixed_weights


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, augmented (faces, one-hot labels[, weights]) batches for `model.fit`;
    `strength` 0 leaves faces as they are, `mixup` 0 leaves them unblended."""

    def __init__(
        self,
        faces: np.ndarray,
        targets: np.ndarray,
        *,
        batch_size: int,
        strength: float,
        seed: int,
        mixup: float = 0.0,
        sample_weights: np.ndarray | None = None,
        workers: int = 4,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        self.faces, self.targets, self.weights = faces, targets, sample_weights
        self.batch_size, self.strength, self.seed = batch_size, strength, seed
        self.mixup = mixup
        self.epoch = 0
        self.order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.faces))

    def __len__(self) -> int:
        return math.ceil(len(self.faces) / self.batch_size)

    def __getitem__(self, index: int):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        faces, targets = self.faces[picked], self.targets[picked]
        weights = None if self.weights is None else self.weights[picked]
        if self.strength > 0:
            faces = augment_faces(faces, rng, self.strength)
        if self.mixup > 0:
            faces, targets, weights = mixup(faces, targets, weights, rng, self.mixup)
        return (faces, targets) if weights is None else (faces, targets, weights)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._shuffle()
