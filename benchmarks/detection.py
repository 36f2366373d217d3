"""Recall, false positives and speed of every face detector on scenes with known faces (a
script, not a test).

    python benchmarks/detection.py [--faces FOLDER] [--scenes 30]

FOLDER is a face set as ingest writes it (`data/interim` of a project; its test split is
used): FER2013's faces for the real figures (README, "Using FER2013"), the synthetic
generator's otherwise. Each cell of the table is `--scenes` 640x480 scenes with two faces
pasted at one size (32 to 240 pixels) and turned by up to the given angle, a third of them
darkened or brightened and a third with the lower part of each face covered; then 50
face-free scenes; then the milliseconds a frame at 640x480 and 1920x1080. A face counts as
found when a box overlaps it by IoU > 0.3; every other box is a false positive.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from ferops.data.faceset import load_faceset
from ferops.data.scenes import scene
from ferops.imaging.faces import BLAZEFACE, HAAR, Box, FaceDetector

SIZES = (32, 64, 120, 240)
ANGLES = (0, 20, 40)


def faces_from(folder: Path | None, count: int, seed: int) -> np.ndarray:
    if folder is not None:
        return load_faceset(folder)["test"].x
    from ferops.data.synthetic import balanced_labels, generate_faces

    rng = np.random.default_rng(seed)
    return generate_faces(balanced_labels(max(1, count // 7), rng=rng), rng=rng)


def place(image: np.ndarray, face: np.ndarray, box: Box, angle: float, kind: int) -> None:
    """Paste `face` into `box`, turned by `angle`; kind 1: lighting changed, 2: covered."""
    big = cv2.resize(face, (box.w, box.h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if angle:
        turn = cv2.getRotationMatrix2D((box.w / 2, box.h / 2), angle, 1.0)
        big = cv2.warpAffine(big, turn, (box.w, box.h), borderMode=cv2.BORDER_REPLICATE)
    if kind == 1:
        big = big * (0.5 if box.x % 2 else 1.4)
    if kind == 2:
        big[int(box.h * 0.62) :, :] = 90  # a scarf or a hand over mouth and chin
    image[box.y : box.y + box.h, box.x : box.x + box.w] = np.clip(big, 0, 255).astype(np.uint8)


def cell(detectors: dict, faces: np.ndarray, size: int, angle: int, scenes: int, rng) -> dict:
    found = {name: 0 for name in detectors}
    false = {name: 0 for name in detectors}
    for number in range(scenes):
        grey = cv2.cvtColor(scene(640, 480, seed=number), cv2.COLOR_BGR2GRAY)
        left = Box(int(rng.integers(0, 320 - size)), int(rng.integers(0, 480 - size)), size, size)
        right = Box(
            int(rng.integers(320, 640 - size)), int(rng.integers(0, 480 - size)), size, size
        )
        truths = [left, right]
        for truth in truths:
            face = faces[rng.integers(len(faces))]
            place(grey, face, truth, angle * rng.choice([-1, 1]), number % 3)
        for name, detector in detectors.items():
            boxes = detector.detect(grey)
            hits = [any(b.iou(t) > 0.3 for b in boxes) for t in truths]
            found[name] += sum(hits)
            false[name] += sum(not any(b.iou(t) > 0.3 for t in truths) for b in boxes)
    return {name: (found[name] / (2 * scenes), false[name] / scenes) for name in detectors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path, help="a face-set folder (data/interim)")
    parser.add_argument("--scenes", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    faces = faces_from(args.faces, 700, seed=0)
    detectors = {name: FaceDetector(Path(name)) for name in (HAAR, BLAZEFACE)}
    source = args.faces or "synthetic faces"
    print(f"{len(faces)} faces from {source}; {args.scenes} scenes of two faces a cell")
    print(
        f"{'size':>5} {'angle':>6}"
        + "".join(f"{n + ' recall':>18}{'fp/img':>8}" for n in detectors)
    )
    for size in SIZES:
        for angle in ANGLES:
            result = cell(detectors, faces, size, angle, args.scenes, rng)
            print(
                f"{size:5d} {'±' + str(angle):>6}"
                + "".join(f"{r:18.2f}{fp:8.2f}" for r, fp in result.values()),
                flush=True,
            )
    empty = {name: 0 for name in detectors}
    for number in range(50):
        grey = cv2.cvtColor(scene(640, 480, seed=1000 + number), cv2.COLOR_BGR2GRAY)
        for name, detector in detectors.items():
            empty[name] += len(detector.detect(grey))
    print("face-free scenes (50), boxes:", empty)
    for width, height in ((640, 480), (1920, 1080)):
        grey = cv2.cvtColor(scene(width, height), cv2.COLOR_BGR2GRAY)
        for name, detector in detectors.items():
            detector.detect(grey)
            started = time.perf_counter()
            for _ in range(20):
                detector.detect(grey)
            ms = (time.perf_counter() - started) / 20 * 1000
            print(f"{width}x{height} {name}: {ms:.1f} ms a frame")


if __name__ == "__main__":
    main()
