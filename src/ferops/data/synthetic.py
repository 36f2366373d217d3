"""Deterministic synthetic 48x48 grayscale faces for the seven emotions.

Each face has its own identity (shape, skin tone, eye spacing, hair), pose (rotation, scale,
shift), lighting (gradient, gamma) and sensor noise. The emotion lives only in the brows, eyes,
mouth and nose, shown at a random intensity, so weak expressions blur into `neutral` and into
each other the way real ones do. Translation and lighting make raw pixels a poor feature: a
linear model on pixels does clearly worse than a small CNN (tests/model/test_learning.py measures
both), which is what makes this data set useful for exercising the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES
from ferops.kernel.model_spec import FACE_SIZE

_CANVAS = 96  # drawn at 2x, then warped down, for smooth anti-aliased strokes
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are multiplied by 2**_SHIFT

# Expression prototypes per emotion (FER2013 order):
# brow_tilt (+ inner ends up), brow_raise, eye_open, mouth_curve (+ smile), mouth_open,
# mouth_width, nose_wrinkle.
_PROTOTYPES = np.array(
    [
        [-1.0, -0.6, 0.75, -0.35, 0.15, 0.85, 0.0],  # angry
        [-0.5, -0.3, 0.55, -0.6, 0.2, 0.95, 1.0],  # disgust
        [0.9, 0.8, 1.4, -0.25, 0.55, 1.2, 0.0],  # fear
        [0.0, 0.1, 0.8, 1.0, 0.3, 1.25, 0.0],  # happy
        [1.0, 0.0, 0.8, -0.85, 0.0, 0.9, 0.0],  # sad
        [0.0, 1.0, 1.5, 0.0, 1.0, 0.7, 0.0],  # surprise
        [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],  # neutral
    ],
    dtype=np.float64,
)
_NEUTRAL = _PROTOTYPES[EMOTIONS.index("neutral")]
assert _PROTOTYPES.shape[0] == NUM_CLASSES


@dataclass(frozen=True)
class Expression:
    brow_tilt: float
    brow_raise: float
    eye_open: float
    mouth_curve: float
    mouth_open: float
    mouth_width: float
    nose_wrinkle: float


def generate_faces(
    labels: np.ndarray,
    *,
    rng: np.random.Generator,
    difficulty: float = 1.0,
    intensity: float | None = None,
) -> np.ndarray:
    """Return uint8 faces of shape (len(labels), 48, 48), one per requested emotion label.

    `intensity` (0 neutral, 1 the full prototype) sets every face's expression strength instead
    of drawing it; the draws are made all the same, so one seed gives the same faces at another
    strength (the model tests' directional check)."""
    faces = np.empty((len(labels), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    for i, label in enumerate(labels):
        faces[i] = _render_face(int(label), rng, difficulty, intensity)
    return faces


def balanced_labels(per_class: int, *, rng: np.random.Generator) -> np.ndarray:
    """Return `per_class` labels of each emotion, shuffled, as int8."""
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int8), per_class)
    rng.shuffle(labels)
    return labels


def _expression(
    label: int, rng: np.random.Generator, difficulty: float, intensity: float | None
) -> Expression:
    drawn = rng.uniform(1.0 - 0.35 * min(difficulty, 2.0), 1.0)
    intensity = drawn if intensity is None else intensity
    params = _NEUTRAL + intensity * (_PROTOTYPES[label] - _NEUTRAL)
    params = params + rng.normal(0.0, 0.08 * difficulty, size=params.shape)
    return Expression(*params.tolist())


def _render_face(
    label: int, rng: np.random.Generator, difficulty: float, intensity: float | None
) -> np.ndarray:
    canvas = _background(rng)
    expression = _expression(label, rng, difficulty, intensity)
    skin = rng.uniform(110, 215)
    feature = max(0.0, skin - rng.uniform(80, 140))  # brows, pupils, mouth interior
    cx, cy = _CANVAS / 2 + rng.normal(0, 1.5), _CANVAS / 2 + rng.normal(0, 1.5)
    half_w, half_h = rng.uniform(26, 34), rng.uniform(33, 41)

    _ellipse(canvas, (cx, cy), (half_w, half_h), 0, skin, filled=True)
    if rng.random() < 0.8:  # hair: a dark cap of random depth
        hair = rng.uniform(10, 90)
        _ellipse(
            canvas,
            (cx, cy - half_h * 0.55),
            (half_w * 1.08, half_h * 0.55),
            0,
            hair,
            filled=True,
            arc=(180, 360),
        )

    eye_dx, eye_y = half_w * rng.uniform(0.36, 0.46), cy - half_h * rng.uniform(0.12, 0.25)
    _draw_eyes(canvas, cx, eye_y, eye_dx, expression, feature, rng)
    _draw_brows(canvas, cx, eye_y, eye_dx, expression, feature, rng)
    _draw_nose(canvas, cx, eye_y, half_h, expression, skin, feature)
    _draw_mouth(
        canvas, cx, cy + half_h * rng.uniform(0.45, 0.58), half_w, expression, skin, feature, rng
    )
    return _photograph(canvas, rng, difficulty)


def _background(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(20, 235)
    ys, xs = np.mgrid[0:_CANVAS, 0:_CANVAS].astype(np.float32) / _CANVAS - 0.5
    gx, gy = rng.normal(0, 60, size=2)
    canvas = base + gx * xs + gy * ys
    for _ in range(rng.integers(0, 4)):  # clutter behind the head
        centre = rng.uniform(0, _CANVAS, size=2)
        axes = rng.uniform(5, 30, size=2)
        _ellipse(canvas, centre, axes, rng.uniform(0, 180), rng.uniform(0, 255), filled=True)
    return canvas.astype(np.float32)


def _draw_eyes(canvas, cx, eye_y, eye_dx, e: Expression, ink: float, rng) -> None:
    width = rng.uniform(6.0, 8.0)
    height = max(0.8, 4.2 * e.eye_open)
    white = min(255.0, ink + 150)
    gaze = rng.normal(0, 0.8)
    for side in (-1, 1):
        centre = (cx + side * eye_dx, eye_y)
        _ellipse(canvas, centre, (width, height), 0, white, filled=True)
        pupil = min(2.8, height)
        _ellipse(canvas, (centre[0] + gaze, eye_y), (2.8, pupil), 0, ink, filled=True)
        _ellipse(canvas, centre, (width, height), 0, ink * 0.8, thickness=1)


def _draw_brows(canvas, cx, eye_y, eye_dx, e: Expression, ink: float, rng) -> None:
    y = eye_y - 9.0 - 5.0 * e.brow_raise
    length = rng.uniform(7, 10)
    thickness = int(rng.integers(3, 5))
    for side in (-1, 1):
        inner = (cx + side * (eye_dx - length * 0.5), y - 5.0 * e.brow_tilt)
        outer = (cx + side * (eye_dx + length * 0.7), y + 1.5 * e.brow_tilt)
        _line(canvas, inner, outer, ink, thickness)


def _draw_nose(canvas, cx, eye_y, half_h, e: Expression, skin: float, ink: float) -> None:
    tip_y = eye_y + half_h * 0.5
    shade = (skin + ink) / 2
    _line(canvas, (cx - 4, tip_y), (cx + 4, tip_y), shade, 2)
    if e.nose_wrinkle > 0.25:  # wrinkles across the bridge: the mark of disgust
        strength = min(1.0, e.nose_wrinkle)
        tone = skin - (skin - ink) * 0.7 * strength
        for dy in (-9, -5):
            _line(canvas, (cx - 5, tip_y + dy), (cx + 5, tip_y + dy - 1.5), tone, 1)


def _draw_mouth(canvas, cx, mouth_y, half_w, e: Expression, skin, ink, rng) -> None:
    width = half_w * 0.42 * np.clip(e.mouth_width, 0.5, 1.6)
    xs = np.linspace(-1.0, 1.0, 17)
    bend = 1.0 - xs**2
    tilt = rng.normal(0, 0.5) + (2.5 * xs if e.nose_wrinkle > 0.5 else 0.0)  # disgust sneer
    upper = mouth_y - 8.0 * e.mouth_curve * (1.0 - bend) + tilt
    opening = max(0.0, e.mouth_open) * 12.0 * bend
    lower = upper + opening + 1.0
    points = np.concatenate(
        [np.stack([cx + xs * width, upper], 1), np.stack([cx + xs[::-1] * width, lower[::-1]], 1)]
    )
    lips = skin - (skin - ink) * 0.6
    cv2.fillPoly(canvas, [_fixed(points)], float(ink), cv2.LINE_AA, _SHIFT)
    cv2.polylines(canvas, [_fixed(points)], True, float(lips), 3, cv2.LINE_AA, _SHIFT)


def _photograph(canvas: np.ndarray, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    """Pose, lighting and sensor noise: the nuisances a classifier must ignore."""
    angle = rng.normal(0, 7 * difficulty)
    scale = rng.uniform(1 - 0.12 * difficulty, 1 + 0.12 * difficulty) * FACE_SIZE / _CANVAS
    shift = rng.normal(0, 2.2 * difficulty, size=2)
    matrix = cv2.getRotationMatrix2D((_CANVAS / 2, _CANVAS / 2), angle, scale)
    matrix[:, 2] += FACE_SIZE / 2 - _CANVAS / 2 + shift
    if rng.random() < 0.5:
        matrix[0] = -matrix[0]
        matrix[0, 2] += FACE_SIZE - 1
    blurred = cv2.GaussianBlur(canvas, (3, 3), 0.8)
    face = cv2.warpAffine(
        blurred,
        matrix,
        (FACE_SIZE, FACE_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    ys, xs = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(np.float32) / FACE_SIZE - 0.5
    light = rng.normal(0, 35 * difficulty, size=2)
    face = face + light[0] * xs + light[1] * ys
    contrast = rng.uniform(1 - 0.35 * difficulty, 1 + 0.2 * difficulty)
    face = (face - face.mean()) * contrast + face.mean() + rng.normal(0, 12 * difficulty)
    face = face + rng.normal(0, rng.uniform(1, 5) * difficulty, size=face.shape)
    return np.clip(np.rint(face), 0, 255).astype(np.uint8)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(points) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _ellipse(canvas, centre, axes, angle, value, *, filled=False, thickness=1, arc=(0, 360)):
    c = _fixed(np.array([centre]))[0, 0]
    a = np.rint(np.asarray(axes) * (1 << _SHIFT)).astype(int)
    cv2.ellipse(
        canvas,
        (int(c[0]), int(c[1])),
        (int(a[0]), int(a[1])),
        float(angle),
        arc[0],
        arc[1],
        float(value),
        -1 if filled else thickness,
        cv2.LINE_AA,
        _SHIFT,
    )


def _line(canvas, start, end, value, thickness):
    p = _fixed(np.array([start, end]))
    cv2.line(
        canvas,
        tuple(map(int, p[0, 0])),
        tuple(map(int, p[1, 0])),
        float(value),
        thickness,
        cv2.LINE_AA,
        _SHIFT,
    )
