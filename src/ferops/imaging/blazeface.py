"""BlazeFace, MediaPipe's short-range CNN face detector, over a picture and its tiles.

The model sees a 128x128 letterbox of what it is given and finds faces down to about a fifth
of it, so on a whole 640x480 frame only faces over about 100 pixels. ferops runs it on the
whole picture, on overlapping square tiles of two thirds of its shorter side and, for photos,
on finer tiles down to where a 48-pixel face is found (tile_sides); boxes are merged by
non-maximum suppression. A box cut by a tile's edge is dropped: the overlapping tile holds the
whole face. Figures against OpenCV's Haar cascade: benchmarks/detection.py and
docs/performance.md. The weights ship in the package (detectors/NOTICE.md: Apache-2.0) and
run on LiteRT, never TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferops.kernel.errors import DataError
from ferops.kernel.integrity import sha256_file
from ferops.kernel.quiet import native_stderr_closed

MODEL = Path(__file__).parent / "detectors" / "blazeface_short_range.tflite"
SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
INPUT = 128
# The model's SSD anchors: a 16x16 grid (stride 8) with 2 anchors a cell, then an 8x8 grid
# (stride 16) with 6; every anchor of a cell sits at its centre (MediaPipe's fixed anchor size).
ANCHOR_LAYERS = ((8, 2), (16, 6))
TILE_FRACTION = 2 / 3
FACE_IN_TILE = 0.2  # the smallest face found is about a fifth of what the model is given
OVERLAP = 0.3  # IoU above which two boxes are one face
# Where BlazeFace's box sits in a FER2013 face: 0.822 of the face's side wide, its centre
# 0.076 of the side below the face's centre (the box leaves out forehead), measured on
# PublicTest's faces pasted upright into scenes (benchmarks/detection.py --framing).
BOX_IN_FACE = 0.822
CENTRE_BELOW = 0.076
# LiteRT's threads a pass: two took a pass from 1.06 to 0.60 ms and `ferops stream` from 270 to
# 367 frames/s (one face; 130 to 171 with four) on a 2-core AMD EPYC (AVX512), the same faces
# found (docs/performance.md, "Finding faces"); more than two barely pay for a 128x128 input.
THREADS = min(2, os.cpu_count() or 1)


def anchor_centres() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1], in the order of the model's outputs."""
    centres = []
    for stride, per_cell in ANCHOR_LAYERS:
        grid = INPUT // stride
        for y in range(grid):
            for x in range(grid):
                centres += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    return np.array(centres, np.float32)


class BlazeFace:
    """Faces in a grey image as (x, y, w, h) boxes with scores."""

    def __init__(
        self, model: Path = MODEL, *, threshold: float = 0.5, threads: int = THREADS
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if model == MODEL and sha256_file(model) != SHA256:
            raise DataError(f"{model}: not the BlazeFace file ferops ships (sha256 differs)")
        self.threshold = threshold
        self.anchors = anchor_centres()
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        with native_stderr_closed():
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        self.boxes_out = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self.scores_out = next(o["index"] for o in outputs if o["shape"][-1] == 1)

    def detect(
        self, grey: np.ndarray, tiles: bool = True, smallest: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Faces in a 2-D uint8 image, whole frame and (with `tiles`) tiles merged: (n, 4)
        boxes as x, y, w, h and (n, 2, 2) eye centres, in pixels. With `smallest`, finer
        tiles too, down to where a face of that many pixels is found (tile_sides)."""
        height, width = grey.shape
        found = [self.run(grey, 0, 0, inner=None)]
        for tile in tile_sides(height, width, smallest) if tiles else []:
            for top in starts(height, tile):
                for left in starts(width, tile):
                    patch = grey[top : top + tile, left : left + tile]
                    found.append(self.run(patch, left, top, inner=(width, height)))
        boxes, scores, eyes = (np.concatenate(part) for part in zip(*found, strict=True))
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.threshold, OVERLAP)
        keep = outside_stronger(boxes, scores, np.asarray(keep, int).ravel())
        return boxes[keep], eyes[keep]

    def run(
        self, grey: np.ndarray, left: int, top: int, inner: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores and eyes from one pass on `grey` (a tile at left, top of a frame of
        size `inner`, or the frame)."""
        height, width = grey.shape
        side = max(height, width)
        square = np.zeros((side, side), np.uint8)
        pad_y, pad_x = (side - height) // 2, (side - width) // 2
        square[pad_y : pad_y + height, pad_x : pad_x + width] = grey
        small = cv2.resize(square, (INPUT, INPUT), interpolation=cv2.INTER_AREA)
        pixels = small.astype(np.float32) / 127.5 - 1.0
        self.interpreter.set_tensor(self.input, np.repeat(pixels[None, ..., None], 3, axis=3))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.scores_out)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw, -80.0, 80.0)))
        chosen = scores > self.threshold
        scores = scores[chosen]
        regression = self.interpreter.get_tensor(self.boxes_out)[0][chosen] / INPUT
        centres = self.anchors[chosen] + regression[:, :2]
        sizes = regression[:, 2:4]
        boxes = np.concatenate([centres - sizes / 2, sizes], axis=1) * side
        boxes[:, :2] += (left - pad_x, top - pad_y)
        # keypoints 0 and 1 of six are the eyes, as offsets from the anchor like the centre
        eyes = (self.anchors[chosen, None] + regression[:, 4:8].reshape(-1, 2, 2)) * side
        eyes += (left - pad_x, top - pad_y)
        if inner is not None:  # a box cut by the tile's edge: its neighbour holds the face
            margin = 2
            whole = (
                ((boxes[:, 0] > left + margin) | (left == 0))
                & ((boxes[:, 1] > top + margin) | (top == 0))
                & ((boxes[:, 0] + boxes[:, 2] < left + width - margin) | (left + width >= inner[0]))
                & ((boxes[:, 1] + boxes[:, 3] < top + height - margin) | (top + height >= inner[1]))
            )
            boxes, scores, eyes = boxes[whole], scores[whole], eyes[whole]
        return boxes.astype(np.float32), scores.astype(np.float32), eyes.astype(np.float32)


def outside_stronger(boxes: np.ndarray, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """`chosen` less each box lying mostly (over half its area) inside a chosen box with a
    higher score: a fine tile sees an eye or a mouth of a face too big for it as a face of its
    own (on 240- and 300-pixel faces, false boxes 0.65-1.0 an image before, 0.40-0.75 after,
    with the same recall)."""
    kept: list[int] = []
    for i in sorted(chosen, key=lambda i: -scores[i]):
        x, y, w, h = boxes[i]
        inside = [
            max(0.0, min(x + w, bx + bw) - max(x, bx)) * max(0.0, min(y + h, by + bh) - max(y, by))
            for bx, by, bw, bh in boxes[kept]
        ]
        if max(inside, default=0.0) <= 0.5 * w * h:
            kept.append(i)
    return np.array(sorted(kept), int)


def face_squares(boxes: np.ndarray) -> np.ndarray:
    """The square a FER2013 face would fill around each (x, y, w, h) box, so a detected face
    is cut out with the framing the classifier learned."""
    side = boxes[:, 2:3] / BOX_IN_FACE
    centre = boxes[:, :2] + boxes[:, 2:4] / 2 - np.concatenate([0 * side, CENTRE_BELOW * side], 1)
    return np.concatenate([centre - side / 2, side, side], axis=1)


def tile_sides(height: int, width: int, smallest: int | None = None) -> list[int]:
    """Sides of the square tiles to search, coarse to fine: two thirds of the shorter side,
    then halves down to tiles in which a `smallest`-pixel face is a fifth of the side, the
    least BlazeFace finds. None finer than two thirds of the model's input (they would only be
    upscaled); without `smallest` the coarse tiles only (video, where faces are followed)."""
    side = round(min(height, width) * TILE_FRACTION)
    finest = round(smallest / FACE_IN_TILE) if smallest else side
    sides = []
    while side >= 2 * INPUT // 3:
        sides.append(side)
        if side <= 1.25 * finest:  # near enough: a level more would repeat this one
            break
        side = max(side // 2, finest)
    return sides


def starts(length: int, tile: int) -> list[int]:
    """Where overlapping tiles of `tile` pixels start along `length` (a third overlapping)."""
    if tile >= length:
        return [0]
    step = max(1, round(tile * 2 / 3))
    return sorted({*range(0, length - tile, step), length - tile})
