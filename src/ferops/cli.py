"""The `ferops` command: one subcommand per pipeline stage, each reading params.yaml."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ferops.config import load_params
from ferops.errors import FeropsError
from ferops.layout import Layout

app = typer.Typer(
    help="ferops: reproducible facial-emotion-recognition pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RootOption = Annotated[
    Path, typer.Option("--root", help="Project root: holds params.yaml, data/ and reports/.")
]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    """Configure logging once for every subcommand."""
    # Our own messages at INFO; third-party libraries (GX, TF, MLflow) only when they warn.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("ferops").setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def ingest(root: RootOption = Path()) -> None:
    """Read data.source (synthetic, fer2013-csv or image-folder) into data/interim."""
    from ferops.data.ingest import ingest as run_ingest

    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: run_ingest(
            params.data, seed=params.seed, out_dir=layout.interim, report_path=layout.ingest_report
        )
    )


@app.command()
def preprocess(root: RootOption = Path()) -> None:
    """Drop blank and duplicated faces, normalise contrast, write data/processed."""
    from ferops.preprocess import preprocess as run_preprocess

    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: run_preprocess(
            params.preprocess,
            in_dir=layout.interim,
            out_dir=layout.processed,
            report_path=layout.preprocess_report,
        )
    )


@app.command()
def validate(root: RootOption = Path()) -> None:
    """Check data/processed with the Great Expectations suite; exit 1 if a critical one fails."""
    from ferops.validate import validate as run_validate

    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: run_validate(
            params.validate,
            in_dir=layout.processed,
            gx_root=layout.root,
            report_dir=layout.validation,
        )
    )


@app.command()
def train(
    root: RootOption = Path(),
    track: Annotated[
        bool, typer.Option(help="Log the run to MLflow (--no-track: a machine without it).")
    ] = True,
) -> None:
    """Train the tuned (or configured) model on data/processed; log the run to MLflow.

    Stopped part-way (Ctrl-C, a crash, a time limit), the same command resumes from the
    last finished epoch."""
    from ferops.train import train as run_train

    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: run_train(
            params,
            processed=layout.processed,
            tuned_params=layout.best_params,
            model_path=layout.model,
            report_dir=layout.training,
            root=layout.root,
            state_dir=layout.train_state,
            track=track,
        )
    )


@app.command()
def evaluate(root: RootOption = Path()) -> None:
    """Evaluate models/model.keras on the test split; write reports/ and log to MLflow."""
    from ferops.evaluate import evaluate as run_evaluate

    layout = Layout(root)
    _params(layout)  # a broken params.yaml stops here, before any work
    _guard(
        lambda: run_evaluate(
            processed=layout.processed,
            model_path=layout.model,
            run_file=layout.training_run,
            out_dir=layout.evaluation,
            metrics_path=layout.metrics,
            root=layout.root,
        )
    )


@app.command()
def register(root: RootOption = Path()) -> None:
    """Register the trained model; promote it to champion only if it beats the current one."""
    from ferops.register import register as run_register

    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: run_register(
            params,
            processed=layout.processed,
            model_path=layout.model,
            run_file=layout.training_run,
            evaluation_dir=layout.evaluation,
            metrics_path=layout.metrics,
            promotion_path=layout.promotion,
            root=layout.root,
        )
    )


ModelOption = Annotated[
    str | None,
    typer.Option(help="A .keras/.onnx/.tflite file or a models:/ URI; default the champion."),
]
RuntimeOption = Annotated[
    str, typer.Option(help="auto (ONNX Runtime when there), onnx, litert or keras.")
]
DetectorOption = Annotated[
    Path | None,
    typer.Option(help="Face detector: an OpenCV cascade (.xml) or YuNet (.onnx) file."),
]


@app.command()
def predict(
    photos: Annotated[list[Path], typer.Argument(help="Photos (any size or colour).")],
    model: ModelOption = None,
    runtime: RuntimeOption = "auto",
    detector: DetectorOption = None,
    annotate: Annotated[
        Path | None, typer.Option(help="Write a copy of each photo with boxes and labels here.")
    ] = None,
    whole: Annotated[
        bool, typer.Option("--whole", help="Each image is one face already (no detection).")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    root: RootOption = Path(),
) -> None:
    """Find every face in each photo and name its emotion (box, confidence, 7 probabilities)."""
    import json

    import cv2
    import pandas as pd

    from ferops.analysis import FaceResult, analyse, draw, read_photo
    from ferops.data.image_folder import fit_face
    from ferops.faces import Box, to_grey

    classifier, finder = _face_pipeline(root, model, runtime, detector)
    records = []
    for photo in photos:
        image = _guard(lambda photo=photo: read_photo(photo))
        if whole:
            grey = to_grey(image)
            face = fit_face(grey)[None]
            box = Box(0, 0, grey.shape[1], grey.shape[0])
            results = [FaceResult(box, classifier.probabilities(face)[0])]
        else:
            results = analyse(image, finder, classifier)
        if not results:
            typer.echo(f"{photo}: no face found", err=True)
        for i, result in enumerate(results):
            records.append({"photo": str(photo), "face": i + 1, **result.record()})
        if annotate is not None and results:
            annotate.mkdir(parents=True, exist_ok=True)
            draw(image, results)
            cv2.imwrite(str(annotate / f"{photo.stem}.annotated.png"), image)
    if json_output:
        for record in records:
            typer.echo(json.dumps(record))
    elif records:
        typer.echo(pd.DataFrame(records).round(3).to_string(index=False))
    typer.echo(
        f"{classifier.runtime} runtime, {len(records)} face(s) in {len(photos)} photo(s)", err=True
    )


@app.command()
def stream(
    source: Annotated[str, typer.Option(help="A video file, or a camera index such as 0.")],
    output: Annotated[
        Path | None, typer.Option(help="Write the annotated video here (.mp4).")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-frame, per-face timeline here.")
    ] = None,
    model: ModelOption = None,
    runtime: RuntimeOption = "auto",
    detector: DetectorOption = None,
    smoothing: Annotated[
        float, typer.Option(help="Weight of the past in each face's emotion (0: none).")
    ] = 0.6,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
    detect_width: Annotated[
        int, typer.Option(help="Detect faces on frames shrunk to this width (0: full size).")
    ] = 320,
    root: RootOption = Path(),
) -> None:
    """Track faces through a video or camera and follow each one's emotion over time."""
    from ferops.stream import run_stream

    classifier, finder = _face_pipeline(root, model, runtime, detector, detect_width or None)
    summary = _guard(
        lambda: run_stream(
            source,
            finder,
            classifier,
            output=output,
            timeline=csv,
            max_frames=max_frames,
            smoothing=smoothing,
        )
    )
    typer.echo(
        f"{summary.frames} frames, {summary.faces} face detections, {summary.face_ids} distinct "
        f"faces, {summary.fps:.1f} frames/s ({classifier.runtime} runtime)"
    )


def _face_pipeline(
    root: Path,
    model: str | None,
    runtime: str,
    detector: Path | None,
    detect_width: int | None = None,
):
    """The classifier (`--model`, else the champion, else the shipped model) and the detector."""
    from ferops.faces import FaceDetector
    from ferops.runtime import resolve_classifier

    layout = Layout(root)
    params = _params(layout)
    classifier = _guard(
        lambda: resolve_classifier(
            model, root=layout.root, model_name=params.register.model_name, runtime=runtime
        )
    )
    return classifier, _guard(lambda: FaceDetector(detector, detect_width=detect_width))


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Output file (.onnx or .tflite).")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or litert.")] = "onnx",
    model: Annotated[
        str | None, typer.Option(help="A .keras file or a models:/ URI; default the champion.")
    ] = None,
    root: RootOption = Path(),
) -> None:
    """Export a model for ONNX Runtime or LiteRT, checked against Keras within 1e-4."""
    from ferops.export import FORMATS, export_model
    from ferops.runtime import keras_model_with_preprocessing

    if fmt not in FORMATS:
        typer.secho(f"error: --format must be one of {', '.join(FORMATS)}", fg="red", err=True)
        raise typer.Exit(code=1)
    layout = Layout(root)
    params = _params(layout)
    keras_model, preprocessing = _guard(
        lambda: keras_model_with_preprocessing(
            model, root=layout.root, model_name=params.register.model_name
        )
    )
    faces = _check_faces(layout)
    difference = _guard(lambda: export_model(keras_model, fmt, out, faces, preprocessing))
    typer.echo(f"wrote {out} ({fmt}); largest difference from Keras {difference:.1e}")


def _check_faces(layout: Layout):
    """Real faces for the parity check: the processed test split, else synthetic ones."""
    import dataclasses

    from ferops.config import load_params
    from ferops.data.faceset import load_faceset
    from ferops.data.ingest import synthetic_faceset

    try:
        return load_faceset(layout.processed)["test"].x[:256]
    except (FileNotFoundError, FeropsError):
        params = load_params(layout.params)
        small = dataclasses.replace(
            params.data.synthetic, train_per_class=1, val_per_class=1, test_per_class=20
        )
        data = dataclasses.replace(params.data, source="synthetic", synthetic=small)
        return synthetic_faceset(data, seed=params.seed)["test"].x


@app.command()
def tune(
    root: RootOption = Path(),
    trials: Annotated[int | None, typer.Option(help="Total trials; default tune.n_trials.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name to create or resume.")] = None,
    track: Annotated[
        bool,
        typer.Option(
            help="Run as a Prefect flow with MLflow runs (--no-track: neither, for a machine "
            "without them; `ferops import-runs` logs the trials afterwards)."
        ),
    ] = True,
) -> None:
    """Search model variants and optimiser settings with Optuna, as a Prefect flow."""
    if not track:
        from ferops.search import untracked_search

        _guard(lambda: untracked_search(root=str(root), n_trials=trials, storage=storage))
        return
    from ferops.tuning import tune_flow

    _guard(lambda: tune_flow(root=str(root), n_trials=trials, storage=storage, study_name=study))


@app.command("import-runs")
def import_runs(root: RootOption = Path()) -> None:
    """Log a search and a training run made with --no-track (e.g. on a lent GPU) to MLflow,
    and copy a journal-file study into the RDB storage of tune.storage."""
    from ferops.run_import import import_runs as run_import

    layout = Layout(root)
    params = _params(layout)
    outcome = _guard(lambda: run_import(params, layout))
    for line in outcome:
        typer.echo(line)


@app.command("tune-worker")
def tune_worker(
    root: RootOption = Path(),
    trials: Annotated[
        int | None, typer.Option(help="Trials the whole study should hold; default tune.n_trials.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL shared by all workers (PostgreSQL).")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study to join; default derived from params.yaml.")
    ] = None,
) -> None:
    """Join a shared study and run trials until it holds --trials; start one per core/machine.

    MLFLOW_TRACKING_URI (an `mlflow server`) and PREFECT_API_URL say where runs are recorded.
    """
    from ferops.tuning import tune_worker_flow

    ran = _guard(
        lambda: tune_worker_flow(root=str(root), n_trials=trials, storage=storage, study_name=study)
    )
    typer.echo(f"this worker ran {ran} trial(s)")


registry = typer.Typer(help="The MLflow model registry.", no_args_is_help=True)
app.add_typer(registry, name="registry")


@registry.command("import-pretrained")
def import_pretrained(root: RootOption = Path()) -> None:
    """Register the shipped pretrained FER2013 model as models:/fer2013-pretrained@champion."""
    from ferops.pretrained import import_pretrained as run_import

    layout = Layout(root)
    _params(layout)
    outcome = _guard(lambda: run_import(layout.root))
    typer.echo(f"registered {outcome['model_name']} version {outcome['version']}")
    typer.echo(f"serve it: mlflow models serve -m {outcome['model_uri']} --env-manager local")


def _params(layout: Layout):
    return _guard(lambda: load_params(layout.params))


def _guard(action):
    """Run `action`; a FeropsError becomes a one-line message and exit status 1."""
    try:
        return action()
    except FeropsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


if __name__ == "__main__":
    app()
