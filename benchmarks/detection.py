"""Face detectors on scenes with known faces, and what leveling tilted faces is worth to the
classifier (a script, not a test).

    python benchmarks/detection.py [--faces FOLDER] [--scenes 20]            # detectors
    python benchmarks/detection.py --faces FOLDER --split test --alignment   # accuracy
    python benchmarks/detection.py --faces FOLDER --split val --framing      # crop framing

FOLDER is a face set as ingest writes it (`data/interim` of a project): FER2013's faces for the
real figures (README, "Using FER2013"), the synthetic generator's otherwise.

Detectors: the cascade, BlazeFace as photos use it (tiles fine enough for 48-pixel faces) and
with its coarse tiles only (as `ferops stream` searches its 320-pixel-wide frames). Each cell
is `--scenes` 640x480 scenes holding four faces (two at 300 px) of one size, 24 to 300 pixels,
each turned by the cell's angle one way or the other; a third of the scenes darkened or
brightened, a third with the lower part of every face covered. Then 50 face-free scenes, and
the milliseconds a frame at 640x480 and 1920x1080. A face counts as found when a box overlaps
it by IoU > 0.3; every other box is a false positive.

--alignment: every face of the split pasted at 120 px into a scene, upright and turned 20 and
40 degrees; found by the default detector and classified by a model (default: the shipped
one) cut out as it stands and leveled by its eyes. Choose with `--split val`; report `test`.

--framing: where BlazeFace's box and eyes sit in upright FER2013 faces (the constants in
ferops.imaging.blazeface).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from scenes import scene

from ferops.data.faceset import load_faceset
from ferops.imaging.faces import BLAZEFACE, HAAR, Box, FaceDetector, crop_face

SIZES = (24, 32, 48, 64, 120, 240, 300)
ANGLES = (0, 20, 45)


def faces_from(folder: Path | None, split: str, count: int, seed: int) -> tuple:
    """Faces and labels of a face-set split, or synthetic faces."""
    if folder is not None:
        faces = load_faceset(folder)[split]
        return faces.x, faces.y
    from ferops.data.synthetic import balanced_labels, generate_faces

    rng = np.random.default_rng(seed)
    labels = balanced_labels(max(1, count // 7), rng=rng)
    return generate_faces(labels, rng=rng), labels


def place(image: np.ndarray, face: np.ndarray, box: Box, angle: float, kind: int = 0) -> None:
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


def spots(size: int, rng: np.random.Generator) -> list[Box]:
    """Four boxes of `size`, one in each quarter of a 640x480 frame (two halves at 300 px)."""
    cells = [(0, 0, 320, 240), (320, 0, 320, 240), (0, 240, 320, 240), (320, 240, 320, 240)]
    if size > 240:
        cells = [(0, 0, 320, 480), (320, 0, 320, 480)]
    return [
        Box(
            int(x + rng.integers(0, w - size + 1)),
            int(y + rng.integers(0, h - size + 1)),
            size,
            size,
        )
        for x, y, w, h in cells
    ]


def cell(detectors: dict, faces: np.ndarray, size: int, angle: int, scenes: int, rng) -> dict:
    """Recall and false positives per image of each detector on one size and angle."""
    found = dict.fromkeys(detectors, 0)
    false = dict.fromkeys(detectors, 0)
    total = 0
    for number in range(scenes):
        grey = cv2.cvtColor(scene(640, 480, seed=number), cv2.COLOR_BGR2GRAY)
        truths = spots(size, rng)
        for truth in truths:
            face = faces[rng.integers(len(faces))]
            place(grey, face, truth, angle * rng.choice([-1, 1]), number % 3)
        total += len(truths)
        for name, detector in detectors.items():
            boxes = detector.detect(grey)
            found[name] += sum(any(b.iou(t) > 0.3 for b in boxes) for t in truths)
            false[name] += sum(not any(b.iou(t) > 0.3 for t in truths) for b in boxes)
    return {name: (found[name] / total, false[name] / scenes) for name in detectors}


def detectors_table(faces: np.ndarray, scenes: int) -> None:
    rng = np.random.default_rng(0)
    detectors = {
        HAAR: FaceDetector(Path(HAAR)),
        BLAZEFACE: FaceDetector(Path(BLAZEFACE)),  # photos: tiles down to 48-pixel faces
        "blazeface, coarse tiles": FaceDetector(Path(BLAZEFACE), smallest_face=None),  # video
    }
    print(f"{scenes} scenes a cell, four faces a scene (two at 300 px)\n")
    print("| size px | turned | " + " | ".join(f"{n} recall | fp/img" for n in detectors) + " |")
    print("|---|---|" + "---|---|" * len(detectors))
    for size in SIZES:
        for angle in ANGLES:
            result = cell(detectors, faces, size, angle, scenes, rng)
            cells = " | ".join(f"{r:.2f} | {fp:.2f}" for r, fp in result.values())
            print(f"| {size} | ±{angle}° | {cells} |", flush=True)
    empty = dict.fromkeys(detectors, 0)
    for number in range(50):
        grey = cv2.cvtColor(scene(640, 480, seed=1000 + number), cv2.COLOR_BGR2GRAY)
        for name, detector in detectors.items():
            empty[name] += len(detector.detect(grey))
    print("\nboxes on 50 face-free scenes:", empty)
    for width, height in ((640, 480), (1920, 1080)):
        grey = cv2.cvtColor(scene(width, height), cv2.COLOR_BGR2GRAY)
        for name, detector in detectors.items():
            detector.detect(grey)
            started = time.perf_counter()
            for _ in range(20):
                detector.detect(grey)
            ms = (time.perf_counter() - started) / 20 * 1000
            print(f"{width}x{height} {name}: {ms:.1f} ms a frame")


def alignment_table(faces: np.ndarray, labels: np.ndarray, model: str, limit: int) -> None:
    from ferops.inference.resolve import resolve_model
    from ferops.inference.runtime import open_classifier

    files = resolve_model(model, layout=None, register=None)
    classifier = open_classifier(files)
    detector = FaceDetector()
    rng = np.random.default_rng(0)
    size, angles = 120, (0, 20, 40)
    count = min(limit, len(faces))
    kept = {a: {"upright": [], "as it stands": [], "leveled": []} for a in angles}
    for i in range(count):
        sign = rng.choice([-1, 1])
        truth = Box(int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size)), size, size)
        background = cv2.cvtColor(scene(640, 480, seed=i), cv2.COLOR_BGR2GRAY)
        for angle in angles:
            grey = background.copy()
            place(grey, faces[i], truth, angle * sign)
            box = next((b for b in detector.detect(grey) if b.iou(truth) > 0.3), None)
            if box is None:
                continue
            crops = np.stack([faces[i], crop_face(grey, box, level=False), crop_face(grey, box)])
            right = classifier.probabilities(crops).argmax(1) == labels[i]
            for key, hit in zip(kept[angle], right, strict=True):
                kept[angle][key].append(hit)
    print(f"{count} faces at 120 px, {files.describe()}; accuracy on the faces found\n")
    print(
        "| turned | found | the face upright (ceiling) | cut as it stands | leveled by the eyes |"
    )
    print("|---|---|---|---|---|")
    for angle, results in kept.items():
        n = len(results["upright"])
        accuracy = " | ".join(f"{np.mean(v):.3f}" for v in results.values())
        print(f"| ±{angle}° | {n} ({n / count:.1%}) | {accuracy} |")


def framing_table(faces: np.ndarray, limit: int) -> None:
    from ferops.imaging.blazeface import BlazeFace

    detector, size, rows = BlazeFace(), 160, []
    for i in range(min(limit, len(faces))):
        grey = cv2.cvtColor(scene(640, 480, seed=i), cv2.COLOR_BGR2GRAY)
        place(grey, faces[i], Box(200, 150, size, size), 0)
        boxes, eyes = detector.detect(grey)
        for box, pair in zip(boxes, eyes, strict=True):
            if Box(*(round(float(v)) for v in box)).iou(Box(200, 150, size, size)) > 0.3:
                rows.append(np.r_[(box[:2] - (200, 150)) / size, box[2:] / size, pair.ravel()])
    table = np.array(rows)
    centre = table[:, :2] + table[:, 2:4] / 2 - 0.5
    print(f"{len(table)} upright faces found of {min(limit, len(faces))}; in face sides:")
    print(f"box width {table[:, 2].mean():.3f} (sd {table[:, 2].std():.3f})")
    x, y = centre.mean(axis=0)
    print(f"box centre from the face's centre: x {x:+.3f}, y {y:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=Path, help="a face-set folder (data/interim)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--alignment", action="store_true")
    parser.add_argument("--framing", action="store_true")
    parser.add_argument("--model", default="shipped", help="the classifier for --alignment")
    parser.add_argument("--limit", type=int, default=10_000, help="faces for --alignment")
    args = parser.parse_args()
    faces, labels = faces_from(args.faces, args.split, 700, seed=0)
    print(f"{len(faces)} faces: {args.faces or 'synthetic'} ({args.split})")
    if args.alignment:
        alignment_table(faces, labels, args.model, args.limit)
    elif args.framing:
        framing_table(faces, args.limit)
    else:
        detectors_table(faces, args.scenes)


if __name__ == "__main__":
    main()
