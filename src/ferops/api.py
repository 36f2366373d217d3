"""The Python API: what the `ferops` command does, as three functions.

    from ferops.api import classifier, emotions_in_photo, run_stage

    run_stage("train", root=".")                       # one pipeline stage, as dvc runs it
    model = classifier()                               # the champion (or the shipped model)
    for face in emotions_in_photo("party.jpg", model):
        print(face.box, face.emotion, face.confidence)

Everything here is light: TensorFlow loads only when a stage or a Keras model needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferops.imaging.faces import FaceDetector
from ferops.inference.photos import FaceResult, analyse, analyse_whole, read_photo
from ferops.inference.resolve import resolve_classifier
from ferops.inference.runtime import FaceClassifier
from ferops.kernel.config import load_params
from ferops.kernel.layout import Layout
from ferops.pipeline import stage


def run_stage(name: str, root: Path | str = ".", **options: Any) -> Any:
    """Run one stage (ingest … register) on `root`'s params.yaml; no dependency check, unlike
    `dvc repro`. Options are the stage's own (e.g. `track=False` for train and tune)."""
    layout = Layout(Path(root))
    return stage(name).run(load_params(layout.params), layout, **options)


def classifier(
    model: str | Path | None = None, *, root: Path | str = ".", runtime: str = "auto"
) -> FaceClassifier:
    """A .keras/.onnx/.tflite file or a models:/ URI; None: the champion, else the shipped
    model. `runtime`: auto (ONNX Runtime when there), onnx, litert or keras."""
    layout = Layout(Path(root))
    params = load_params(layout.params)
    name = None if model is None else str(model)
    return resolve_classifier(name, layout=layout, register=params.register, runtime=runtime)


def emotions_in_photo(
    photo: Path | str,
    model: FaceClassifier,
    detector: FaceDetector | None = None,
    *,
    whole: bool = False,
) -> list[FaceResult]:
    """Every face found in the photo (largest first) with its emotion; `whole`: the photo is
    one face already."""
    image = read_photo(Path(photo))
    if whole:
        return analyse_whole(image, model)
    return analyse(image, detector or FaceDetector(), model)
