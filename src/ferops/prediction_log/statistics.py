"""What a face looked like before the model's contrast normalisation: the figures drift is
measured on (a darker camera, a blurrier one, smaller photos)."""

from __future__ import annotations

import cv2
import numpy as np

#: Per-face statistics, in the order the log's columns hold them.
FACE_STATISTICS = ("brightness", "contrast", "sharpness")


def face_statistics(faces: np.ndarray) -> dict[str, np.ndarray]:
    """Mean grey level, its standard deviation and the variance of the Laplacian (a standard
    focus measure) of each uint8 48x48 face, as float32 columns."""
    faces = np.asarray(faces)
    flat = faces.reshape(len(faces), -1).astype(np.float32)
    sharpness = np.array(
        [cv2.Laplacian(face, cv2.CV_32F).var() for face in faces], dtype=np.float32
    )
    return {
        "brightness": flat.mean(axis=1),
        "contrast": flat.std(axis=1),
        "sharpness": sharpness,
    }
