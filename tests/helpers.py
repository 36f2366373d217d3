"""Helpers shared by the tiers (plain functions, not fixtures): project copies, data
folders, tiny models. No test module imports another; they all import from here."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from benchmarks.scenes import paste, scene
from ferops.data.faceset import FaceSet, Split
from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.imaging.faces import Box, FaceDetector
from ferops.kernel.config import TrainConfig
from ferops.kernel.layout import Layout
from ferops.kernel.model_spec import ModelSpec
from ferops.ops.services import free_port  # noqa: F401  (tests import it from here)
from ferops.registry.pyfunc import MAX_IMAGE_BYTES

REPO = Path(__file__).resolve().parents[1]


def tiny_onnx_classifier(path: Path) -> None:
    """A valid 7-way classifier for (N, 48, 48) uint8 faces, built with onnx's own helpers:
    no Keras export, so the test itself stays out of TensorFlow."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(48 * 48, 7)).astype(np.float32) / 1000, "w"
    )
    shape = numpy_helper.from_array(np.array([-1, 48 * 48], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["faces"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("faces", TensorProto.UINT8, [None, 48, 48])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 7])],
        initializer=[weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def found(truth: Box, boxes: list[Box]) -> bool:
    return any(truth.iou(box) > 0.3 for box in boxes)


def detectable(tiny_faceset, count: int) -> list[np.ndarray]:
    """The first `count` test faces the default detector finds when pasted alone."""
    detector = FaceDetector()
    chosen = []
    for face in tiny_faceset["test"].x:
        image = scene()
        truth = paste(image, face, 200, 150)
        if found(truth, detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))):
            chosen.append(face)
        if len(chosen) == count:
            return chosen
    raise AssertionError("too few detectable faces")


def model_keys_match(trained: dict, chosen: dict) -> bool:
    return all(trained[key] == value for key, value in chosen.items() if key in trained)


# Folder names as users have them: mixed case and synonyms.
CLASS_DIRS = ["Anger", "disgust", "FEAR", "happiness", "Sadness", "surprised", "neutral"]


def make_folder(root: Path, splits=("train", "val", "test"), per_class: int = 2) -> Path:
    """A tiny image-folder data set with odd sizes, colour modes and formats."""
    rng = np.random.default_rng(0)
    modes = [
        ("L", (48, 48), "png"),
        ("RGB", (97, 61), "jpg"),
        ("RGBA", (30, 40), "png"),
        ("RGB", (200, 200), "jpeg"),
    ]
    n = 0
    for split in splits:
        for class_dir in CLASS_DIRS:
            folder = root / split / class_dir
            folder.mkdir(parents=True)
            for i in range(per_class):
                mode, size, ext = modes[n % len(modes)]
                n += 1
                channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
                pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
                Image.fromarray(pixels.squeeze(), mode=None).convert(mode).save(
                    folder / f"img{i}.{ext}"
                )
    return root


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "ferops test",
    "GIT_AUTHOR_EMAIL": "test@ferops.invalid",
    "GIT_COMMITTER_NAME": "ferops test",
    "GIT_COMMITTER_EMAIL": "test@ferops.invalid",
}


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **GIT_IDENTITY,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        **(env or {}),
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


def set_params(project: Path, **changes: object) -> Path:
    """Apply dotted-key changes (`train.epochs=2`) to the params.yaml in `project`."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# The one way tests shrink the pipeline: the real params.yaml with these keys overridden. Tiny
# synthetic splits (84 / 28 / 28 faces), a tiny model, two epochs, a three-trial search.
TINY: dict[str, object] = {
    "data.synthetic.train_per_class": 12,
    "data.synthetic.val_per_class": 4,
    "data.synthetic.test_per_class": 4,
    "validate.min_split_size": {"train": 10, "val": 5, "test": 5},
    "model.width": 4,
    "model.depth": 2,
    "train.epochs": 2,
    "train.batch_size": 16,
    "train.patience": 2,
    "tune.n_trials": 3,
    "tune.epochs": 2,
    "tune.pruner_startup_trials": 1,
    "tune.pruner_warmup_epochs": 0,
    "tune.space.attention": ["none", "spatial"],
    "tune.space.width": [4],
    "tune.space.depth": [1, 2],
}


def tiny_params_file(root: Path, base: Path = REPO / "params.yaml", **changes: object) -> Path:
    """`root`/params.yaml: `base` (the real params.yaml) with TINY and then `changes` applied."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(base, root / "params.yaml")
    return set_params(root, **{**TINY, **changes})


# What the FER2013 GPU profile (params/fer2013-gpu.yaml) needs beyond TINY to be as small.
TINY_GPU: dict[str, object] = {
    "train.precision": "float32",
    "tune.max_minutes": None,
    "tune.space.blocks": [1],
}


def tiny_profile_file(root: Path, profile: Path) -> Path:
    """`root`/params.yaml: the real params.yaml with `profile`, then TINY and TINY_GPU."""
    from ferops.kernel.config import apply_profile

    root.mkdir(parents=True, exist_ok=True)
    apply_profile(REPO / "params.yaml", profile, root / "params.yaml")
    return set_params(root, **TINY, **TINY_GPU)


def copy_project(dest: Path) -> Path:
    """A fresh copy of the repository's files (what a clone would hold) with tiny params."""
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout
    for name in files.splitlines():
        source = REPO / name
        if source.is_file() and not name.startswith(("data/interim", "data/processed")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q"], dest)
    tiny_params_file(dest)
    return dest


def trained_model(faceset, path: Path, epochs: int) -> None:
    from ferops.models.builders import build_model
    from ferops.training.fit import fit, seed_everything

    seed_everything(0)
    model = build_model(ModelSpec(attention="spatial", width=8, depth=3, layer_augment=0.0))
    if epochs:
        fit(
            model,
            faceset,
            TrainConfig(batch_size=32, learning_rate=0.004),
            epochs=epochs,
            callbacks=[],
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def trained_project(root: Path, faceset, epochs: int) -> Layout:
    """A project folder holding `faceset` as processed faces and a model trained `epochs` on
    it, where the stages read them."""
    from ferops.data.faceset import save_faceset

    layout = Layout(root)
    save_faceset(faceset, layout.processed)
    trained_model(faceset, layout.model, epochs)
    return layout


def register_in(root: Path, params, faceset, trained_on: str | None = None):
    """The register stage on the project at `root` (see trained_project), its training run
    made up here (with `data.source` = `trained_on` logged, as the train stage logs it)."""
    import mlflow

    from ferops.pipeline.register import run as register

    experiment = mlflow.get_experiment_by_name("register-test")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment("register-test", (root / "mlartifacts").as_uri())
    )
    run = mlflow.MlflowClient().create_run(experiment_id)
    for epoch, accuracy in enumerate((0.2, 0.4)):  # a learning curve, as the train stage logs
        mlflow.MlflowClient().log_metric(run.info.run_id, "accuracy", accuracy, step=epoch)
    if trained_on:
        mlflow.MlflowClient().log_param(run.info.run_id, "data.source", trained_on)
    layout = Layout(root)
    layout.training_run.parent.mkdir(parents=True, exist_ok=True)
    layout.training_run.write_text(json.dumps({"run_id": run.info.run_id}))
    return register(params, layout)


def encoded(face: np.ndarray, fmt: str = "PNG", size=None, mode: str = "L") -> str:
    image = Image.fromarray(face).convert(mode)
    if size:
        image = image.resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def write_clip(path, faces: list[np.ndarray], frames: int = 24) -> None:
    """Faces drifting right across a 640x480 scene, 12 frames/s."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 12.0, (640, 480))
    for i in range(frames):
        image = scene()
        for k, face in enumerate(faces):
            paste(image, face, 40 + 4 * i + 300 * k, 120 + 60 * k)
        writer.write(image)
    writer.release()


def synthetic_faces(seed: int, per_class: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` generated faces of each emotion, shuffled, and their labels."""
    rng = np.random.default_rng(seed)
    labels = balanced_labels(per_class, rng=rng)
    return generate_faces(labels, rng=rng), labels


def copy_faceset(faceset: FaceSet) -> FaceSet:
    """A deep copy a test may change freely."""
    return {k: Split(v.x.copy(), v.y.copy(), list(v.sources)) for k, v in faceset.items()}


def noise_faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def bomb() -> str:
    """A tiny PNG that claims 6,000 x 6,000 grey pixels: its header says so, and a decoder that
    believed it would allocate 36 MB. Written chunk by chunk (encoding the real image took
    0.24 s at every test collection)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 6000, 6000, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    rows = zlib.compress(b"\x00" * 6001 * 16)  # the first rows; the rest never arrive
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


JUNK = {
    "bad base64": ({"image": ["%%%not base64%%%"]}, "row 0: field image is not valid base64"),
    "not an image": (
        {"image": [base64.b64encode(b"hello world").decode()]},
        "row 0: field image is not a readable image",
    ),
    "empty": ({"image": [""]}, "row 0: neither image nor pixels"),
    "wrong shape": ({"pixels": ["1 2 3"]}, "field pixels has 3 values, expected 2304"),
    "NaN": ({"pixels": [" ".join(["nan"] * 2304)]}, "finite grey levels"),
    "too large": ({"image": ["A" * (MAX_IMAGE_BYTES * 2)]}, "image larger than"),
    "decompression bomb": ({"image": [bomb()]}, "decompression bomb"),
    "no column": ({"text": ["hi"]}, "expected a column named 'image'"),
}


# The README's runnable blocks: a fence of these languages must follow a marker line
# `<!-- readme-test: run -->`, `<!-- readme-test: server PORT -->` or
# `<!-- readme-test: skip (why) -->` (tests/unit/test_readme_blocks.py checks there is one).
COMMAND_LANGUAGES = ("bash", "sh", "shell", "console", "python")
MARKER = re.compile(r"<!-- readme-test: (run|server (\d+)|skip \((.+)\)) -->")


@dataclass(frozen=True)
class ReadmeBlock:
    line: int  # where the fence opens (1-based)
    language: str
    code: str
    mode: str | None  # run | server | skip; None: no marker
    port: int | None = None
    reason: str = ""


def readme_blocks(path: Path = REPO / "README.md") -> list[ReadmeBlock]:
    """Every fenced block with a command language, in order, with the marker above it."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        language = lines[i].removeprefix("```").strip()
        if lines[i].startswith("```") and language:
            end = lines.index("```", i + 1)
            if language in COMMAND_LANGUAGES:
                marker = MARKER.fullmatch(lines[i - 1].strip()) if i else None
                mode = marker.group(1).split()[0] if marker else None
                blocks.append(
                    ReadmeBlock(
                        line=i + 1,
                        language=language,
                        code="\n".join(lines[i + 1 : end]) + "\n",
                        mode=mode,
                        port=int(marker.group(2)) if marker and marker.group(2) else None,
                        reason=(marker.group(3) or "") if marker else "",
                    )
                )
            i = end
        i += 1
    return blocks


def wait_until_serving(
    port: int, server: subprocess.Popen, log: Path, limit_s: float = 120
) -> None:
    """Until `mlflow models serve` on `port` answers /ping; its log if it exits first."""
    import time
    import urllib.request

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return
        except OSError:
            assert server.poll() is None, f"the server exited:\n{log.read_text()}"
            time.sleep(1)
    raise AssertionError(f"the server did not answer in {limit_s} s:\n{log.read_text()}")


def latest_artifact(key: str):
    """The newest Prefect artifact under `key` in the server this process reports to (what the
    Prefect UI shows first)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort="CREATED_DESC",
            limit=1,
        )
    return artifact


def ferops_in_a_fresh_interpreter(args: list[str], cwd: Path) -> dict:
    """`ferops ARGS` in a new Python process: its exit code, its output, and which of the
    heavy libraries (TensorFlow, Keras, scikit-learn) it loaded on the way."""
    script = f"""
import json, sys
from typer.testing import CliRunner
from ferops.cli import app
result = CliRunner().invoke(app, {args!r})
heavy = sorted(m for m in ("tensorflow", "keras", "sklearn") if m in sys.modules)
print(json.dumps({{"code": result.exit_code, "output": result.output, "heavy": heavy}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=cwd
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
