"""BlazeFace, MediaPipe's short-range CNN face detector, over a frame and its tiles.

The model sees a 128x128 letterbox of what it is given, so on a whole 640x480 frame it finds
only faces larger than about a fifth of the frame. ferops runs it on the whole frame and on
overlapping square tiles of two thirds of the frame's shorter side, and merges the boxes: on
FER2013 faces pasted into 640x480 scenes this found 64-pixel faces turned 40 degrees (19 of
30; OpenCV's Haar cascade 0) in 8.8 ms a frame against the cascade's 19 ms
(benchmarks/detection.py). A box cut by a tile's edge is dropped: the overlapping tile holds
the whole face. The weights ship in the package (detectors/NOTICE.md: Apache-2.0) and run on
LiteRT, never TensorFlow.
"""

from __future__ import annotations

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
OVERLAP = 0.3  # IoU above which two boxes are one face
# Where BlazeFace's box sits in a FER2013 face: 0.822 of the face's side wide, its centre
# 0.076 of the side below the face's centre (the box leaves out forehead), measured on
# PublicTest's faces pasted upright into scenes (benchmarks/detection.py --framing).
BOX_IN_FACE = 0.822
CENTRE_BELOW = 0.076


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

    def __init__(self, model: Path = MODEL, *, threshold: float = 0.5) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if model == MODEL and sha256_file(model) != SHA256:
            raise DataError(f"{model}: not the BlazeFace file ferops ships (sha256 differs)")
        self.threshold = threshold
        self.anchors = anchor_centres()
        self.interpreter = Interpreter(model_path=str(model), num_threads=1)
        with native_stderr_closed():
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        self.boxes_out = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self.scores_out = next(o["index"] for o in outputs if o["shape"][-1] == 1)

    def detect(self, grey: np.ndarray, tiles: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Faces in a 2-D uint8 image, whole frame and (with `tiles`) tiles merged: (n, 4)
        boxes as x, y, w, h and (n, 2, 2) eye centres, in pixels."""
        height, width = grey.shape
        found = [self.run(grey, 0, 0, inner=None)]
        tile = round(min(height, width) * TILE_FRACTION)
        if tiles and tile >= 2 * INPUT // 3:  # tiles of a small image would only be upscaled
            for top in starts(height, tile):
                for left in starts(width, tile):
                    patch = grey[top : top + tile, left : left + tile]
                    found.append(self.run(patch, left, top, inner=(width, height)))
        boxes, scores, eyes = (np.concatenate(part) for part in zip(*found, strict=True))
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.threshold, OVERLAP)
        keep = np.asarray(keep, int).ravel()
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


def face_squares(boxes: np.ndarray) -> np.ndarray:
    """The square a FER2013 face would fill around each (x, y, w, h) box, so a detected face
    is cut out with the framing the classifier learned."""
    side = boxes[:, 2:3] / BOX_IN_FACE
    centre = boxes[:, :2] + boxes[:, 2:4] / 2 - np.concatenate([0 * side, CENTRE_BELOW * side], 1)
    return np.concatenate([centre - side / 2, side, side], axis=1)


def starts(length: int, tile: int) -> list[int]:
    """Where overlapping tiles of `tile` pixels start along `length` (a third overlapping)."""
    if tile >= length:
        return [0]
    step = max(1, round(tile * 2 / 3))
    return sorted({*range(0, length - tile, step), length - tile})
