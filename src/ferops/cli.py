"""The `ferops` command: a thin front over the pipeline stages, inference and the registry.

Only light modules are imported here, so `ferops predict` with an ONNX model starts without
TensorFlow; each heavy part (a stage, export, MLflow) is imported by the command that runs it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import cv2
import typer

from ferops import __version__
from ferops.imaging.faces import FaceDetector
from ferops.inference.photos import analyse, analyse_whole, draw, photo_paths, read_photo
from ferops.inference.registered import registered_version
from ferops.inference.resolve import SYNTHETIC, project_for, resolve_classifier, resolve_model
from ferops.inference.runtime import FaceClassifier
from ferops.inference.video import run_stream
from ferops.install.moved_store import relocate as relocate_store
from ferops.install.moved_venv import VENV
from ferops.install.moved_venv import repair as repair_venv
from ferops.kernel.config import Params, apply_profile, load_params
from ferops.kernel.errors import FeropsError, first_line
from ferops.kernel.layout import DEFAULT_TRACKING_DB, Layout
from ferops.kernel.process import die_with_parent
from ferops.kernel.quiet import import_tensorflow_quietly, quiet_libraries
from ferops.ops.prefect_setup import (
    prefect_defaults,
    quiet_console_tracebacks,
    server_start_failure,
)
from ferops.pipeline import STAGES, stage

T = TypeVar("T")

app = typer.Typer(
    help="ferops: reproducible facial-emotion-recognition pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RootOption = Annotated[
    Path, typer.Option("--root", help="Project root: holds params.yaml, data/ and reports/.")
]


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"ferops {__version__}")
        raise typer.Exit()


# The commands that load TensorFlow (the stages that build, train or score a Keras model).
TENSORFLOW_COMMANDS = {"tune", "train", "evaluate", "register", "tune-worker", "export"}
# Set by main() for those: TensorFlow is imported quietly once params.yaml has been read, so
# a typo there is reported in half a second, not after TensorFlow's 6 s start (AMD EPYC).
_loads_tensorflow = False


@app.callback()
def main(
    context: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging.", metavar="")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            metavar="",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
):
    """Configure logging once for every subcommand; end with the parent (dvc) if it ends."""
    global _loads_tensorflow
    die_with_parent()
    prefect_defaults()
    # Set on every call: a process may run several commands (the Python API, tests).
    _loads_tensorflow = not verbose and context.invoked_subcommand in TENSORFLOW_COMMANDS
    if not verbose:
        quiet_libraries()
    # Our own messages at INFO; third-party libraries (GX, TF, MLflow) only when they warn.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("ferops").setLevel(logging.DEBUG if verbose else logging.INFO)


def _stage_command(name: str) -> Callable[..., None]:
    def command(root: RootOption = Path()) -> None:
        layout = Layout(root)
        params = _params(layout)
        _guard(lambda: stage(name).run(params, layout))

    command.__doc__ = STAGES[name]
    return command


for _name in ("ingest", "preprocess", "validate", "evaluate", "register"):
    app.command(_name)(_stage_command(_name))


@app.command()
def train(
    root: RootOption = Path(),
    track: Annotated[
        bool, typer.Option(help="Log the run to MLflow (--no-track: a machine without it).")
    ] = True,
) -> None:
    """Train the tuned (or configured) model on data/processed; track it in MLflow.

    Stopped part-way (Ctrl-C, a crash, a time limit), the same command resumes from the
    last finished epoch."""
    layout = Layout(root)
    params = _params(layout)
    _guard(lambda: stage("train").run(params, layout, track=track))


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
    layout = Layout(root)
    params = _params(layout)
    _guard(
        lambda: stage("tune").run(
            params, layout, n_trials=trials, storage=storage, study_name=study, track=track
        )
    )


@app.command()
def profile(
    path: Annotated[Path, typer.Argument(help="A profile, e.g. params/fer2013.yaml.")],
    root: RootOption = Path(),
    out: Annotated[
        Path | None, typer.Option(help="Write here instead of the project's params.yaml.")
    ] = None,
) -> None:
    """Apply a profile (only the keys that differ) to params.yaml, keeping its comments."""
    layout = Layout(root)
    changed = _guard(lambda: apply_profile(layout.params, path, out))
    typer.echo(f"{out or layout.params}: {len(changed)} setting(s) from {path}")


ModelOption = Annotated[
    str | None,
    typer.Option(
        help="A .keras/.onnx/.tflite file, a models:/ URI, or `shipped` / `fast` (the shipped "
        "FER2013 models: accurate, or fast int8). Default: the project's champion, or the "
        "shipped model if there is none or it learned from synthetic faces.",
        metavar="FILE|URI|NAME",
    ),
]
RuntimeOption = Annotated[
    str,
    typer.Option(help="auto (ONNX Runtime when there), onnx, litert or keras.", metavar="NAME"),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Project root (holds params.yaml); default: the nearest such folder at or above "
        "the current one. Not needed with --model FILE.",
        metavar="FOLDER",
    ),
]
DetectorOption = Annotated[
    Path | None,
    typer.Option(
        help="Face detector: blazeface (the default: tilted, covered and large faces), haar "
        "(OpenCV's cascade: upright faces under 48 px), or an OpenCV cascade (.xml), YuNet "
        "(.onnx) or BlazeFace (.tflite) file.",
        metavar="NAME|FILE",
    ),
]


@app.command()
def predict(
    photos: Annotated[
        list[Path],
        typer.Argument(
            help="Photos (any size or colour), or folders: every image under them.",
            metavar="PHOTO|FOLDER...",
        ),
    ],
    model: ModelOption = None,
    runtime: RuntimeOption = "auto",
    detector: DetectorOption = None,
    annotate: Annotated[
        Path | None,
        typer.Option(
            help="Write a copy of each photo with boxes and labels here.", metavar="FOLDER"
        ),
    ] = None,
    whole: Annotated[
        bool,
        typer.Option("--whole", help="Each image is one face already (no detection).", metavar=""),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON lines (each names the model).", metavar="")
    ] = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Record every answer in the prediction log (FEROPS_PREDICTION_LOG, else the "
            "project's logs/predictions/), as the server does.",
            metavar="",
        ),
    ] = False,
    root: ProjectOption = None,
) -> None:
    """Find every face in each photo and name its emotion (box, confidence, 7 probabilities).

    Every readable photo is answered; an unreadable one is named and the command exits 1 at
    the end."""
    if annotate is not None and annotate.exists() and not annotate.is_dir():
        _fail(f"--annotate {annotate}: is a file; give a folder to write annotated copies to")
    paths = photo_paths(photos)
    if not paths:
        _fail(f"no images in {', '.join(map(str, photos))}")
    classifier = _classifier(root, model, runtime)
    finder = None if whole else _guard(lambda: FaceDetector(detector))
    recorder = None
    if log:
        # Deferred on purpose: the log's Parquet writer (pyarrow, pandas) costs every command
        # about 0.3 s of start-up; only --log needs it.
        from ferops.inference.answers import AnswerRecorder

        recorder = _guard(lambda: AnswerRecorder(classifier, "predict", root))
    records = []
    failed: list[str] = []
    written: set[str] = set()
    for photo in paths:
        started = time.perf_counter()
        try:
            image = read_photo(photo)
        except FeropsError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            failed.append(str(photo))
            continue
        results = analyse_whole(image, classifier) if whole else analyse(image, finder, classifier)
        if recorder is not None:
            recorder.record(image, results, started)
        if not results:
            typer.echo(f"{photo}: no face found", err=True)
        for i, result in enumerate(results):
            records.append({"photo": str(photo), "face": i + 1, **result.record()})
            if json_output:
                records[-1]["model"] = classifier.model
        if annotate is not None and results:
            annotate.mkdir(parents=True, exist_ok=True)
            draw(image, results)
            target = annotate / annotated_name(photo, written)
            if not cv2.imwrite(str(target), image):
                _fail(f"{target}: could not be written")
    if json_output:
        for record in records:
            typer.echo(json.dumps(record))
    elif records:
        typer.echo(_table(records))
    if recorder is not None:
        recorder.close()
    logged = "" if recorder is None else f", recorded in {recorder.settings}"
    typer.echo(
        f"{classifier.runtime} runtime, {len(records)} face(s) in "
        f"{len(paths) - len(failed)} photo(s){logged}",
        err=True,
    )
    if failed:
        _fail(f"{len(failed)} of {len(paths)} photo(s) could not be read: {', '.join(failed)}")


def annotated_name(photo: Path, taken: set[str]) -> str:
    """`x.annotated.png`, or `x.2.annotated.png`... when another photo of this run (`b/x.jpg`
    beside `a/x.png`) already took that name; records the name in `taken`."""
    name, n = f"{photo.stem}.annotated.png", 1
    while name in taken:
        n += 1
        name = f"{photo.stem}.{n}.annotated.png"
    taken.add(name)
    return name


def _table(records: list[dict[str, Any]]) -> str:
    """Records as aligned columns, numbers to three decimals (what pandas would print)."""
    columns = list(records[0])
    cells = [[_cell(record[c]) for c in columns] for record in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [" ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [" ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


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
    redetect: Annotated[
        int,
        typer.Option(
            min=1,
            help="Search the whole frame every N frames and follow the faces found in between "
            "(1: every frame).",
        ),
    ] = 5,
    root: ProjectOption = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Record each frame's answers in the prediction log, as --log of predict.",
            metavar="",
        ),
    ] = False,
) -> None:
    """Track faces through a video or camera and follow each one's emotion over time."""
    classifier = _classifier(root, model, runtime)
    finder = _guard(lambda: FaceDetector(detector, detect_width=detect_width or None))
    recorder = None
    if log:
        from ferops.inference.answers import AnswerRecorder

        recorder = _guard(lambda: AnswerRecorder(classifier, "stream", root))
    try:
        summary = _guard(
            lambda: run_stream(
                source,
                finder,
                classifier,
                output=output,
                timeline=csv,
                max_frames=max_frames,
                smoothing=smoothing,
                redetect=redetect,
                progress=_progress_line(),
                record=None if recorder is None else recorder.record,
            )
        )
    finally:
        if recorder is not None:
            recorder.close()
    logged = "" if recorder is None else f", recorded in {recorder.settings}"
    typer.echo(
        f"{summary.frames} frames, {summary.faces} face detections, {summary.face_ids} distinct "
        f"faces, {summary.fps:.1f} frames/s ({classifier.runtime} runtime){logged}"
    )


def _progress_line(every_s: float = 5.0) -> Callable[[int, int | None, float], None]:
    """Frames done (of how many) and frames/s on stderr: redrawn in place on a terminal, a
    line every `every_s` seconds otherwise (a log file)."""
    live = sys.stderr.isatty()
    last = [0.0]

    def show(done: int, total: int | None, fps: float) -> None:
        now = time.monotonic()
        if now - last[0] < (0.25 if live else every_s) and done != total:
            return
        last[0] = now
        of = f"/{total} ({100 * done / total:.0f}%)" if total else ""
        text = f"frame {done}{of}, {fps:.1f} frames/s"
        if live:
            sys.stderr.write(f"\r{text}" + ("\n" if done == total else ""))
            sys.stderr.flush()
        else:
            typer.echo(text, err=True)

    return show


def _classifier(root: Path | None, model: str | None, runtime: str) -> FaceClassifier:
    """`--model` (a file, no project needed; or a models:/ URI), else the project's champion,
    else the shipped model; says which model answers."""

    def resolve() -> FaceClassifier:
        layout, register = project_for(model, root)
        return resolve_classifier(model, layout=layout, register=register, runtime=runtime)

    classifier = _guard(resolve)
    typer.echo(f"model: {classifier.model}", err=True)
    if classifier.note:
        typer.echo(f"  because {classifier.note}", err=True)
    return classifier


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Output file (.onnx or .tflite).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="onnx, onnx-int8 (faster; calibrated on train faces) or litert."
        ),
    ] = "onnx",
    model: Annotated[
        str | None, typer.Option(help="A .keras file or a models:/ URI; default the champion.")
    ] = None,
    root: RootOption = Path(),
) -> None:
    """Export a model for ONNX Runtime or LiteRT, checked against Keras within 1e-4 (int8:
    within 0.02 on average, and the clear answers kept)."""
    # Deferred on purpose: export needs Keras and TensorFlow, which predict does not.
    import_tensorflow_quietly()  # no C++ start-up lines
    from ferops.inference.export import FORMATS, calibration_faces, export_model, parity_faces
    from ferops.inference.runtime import load_keras

    if fmt not in FORMATS:
        typer.secho(f"error: --format must be one of {', '.join(FORMATS)}", fg="red", err=True)
        raise typer.Exit(code=1)
    layout = Layout(root)
    params = _params(layout)
    files = _guard(
        lambda: resolve_model(model, layout=layout, register=params.register, real_faces=False)
    )
    if files.keras is None:
        _fail(f"{files.source}: export needs a Keras model (.keras), not an exported one")
    keras_model = load_keras(files.keras)
    faces = parity_faces(params, layout)
    calibration = (
        calibration_faces(params, layout, files.preprocessing) if fmt == "onnx-int8" else None
    )
    difference = _guard(
        lambda: export_model(keras_model, fmt, out, faces, files.preprocessing, calibration)
    )
    typer.echo(
        f"wrote {out} ({fmt}) from {files.source}; largest difference from Keras {difference:.1e}"
    )


@app.command("import-runs")
def import_runs(root: RootOption = Path()) -> None:
    """Log a search and a training run made with --no-track (e.g. on a lent GPU) to MLflow,
    and copy a journal-file study into the RDB storage of tune.storage."""
    # Deferred on purpose: MLflow and Optuna load only for the commands that use them.
    from ferops.ops.run_import import import_runs as run_import

    layout = Layout(root)
    params = _params(layout)
    for line in _guard(lambda: run_import(params, layout)):
        typer.echo(line)


@app.command()
def relocate(root: RootOption = Path()) -> None:
    """Point the project at this folder after copying or moving it: mlflow.db's artifact
    locations, the .venv's editable install and scripts, DVC's local config. Run it as `make
    relocate`: the copy's own `ferops` still runs the old folder's code until it is done."""
    root = root.resolve()
    db = root / DEFAULT_TRACKING_DB
    if not db.is_file() and not (root / VENV).is_dir():
        _fail(f"{root}: no mlflow.db and no .venv here (is --root the project folder?)")
    venv = repair_venv(root)
    if venv.old_root is not None:
        typer.echo(
            f".venv and .dvc/config.local: {len(venv.files)} file(s) moved from "
            f"{venv.old_root} to here"
        )
    moved = relocate_store(db) if db.is_file() else None
    if moved is not None and moved.old_root is not None:
        typer.echo(f"{db}: {moved.rows} artifact locations moved from {moved.old_root} to here")
    if venv.old_root is None and (moved is None or moved.old_root is None):
        typer.echo(f"{root}: already points here; nothing to do")


@app.command("tune-worker")
def tune_worker(
    root: RootOption = Path(),
    trials: Annotated[
        int | None, typer.Option(help="Trials the whole study should hold; default tune.n_trials.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL shared by all workers (PostgreSQL); from the environment, "
            "it stays out of the process list.",
            envvar="FEROPS_OPTUNA_STORAGE",
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study to join; default derived from params.yaml.")
    ] = None,
) -> None:
    """Join a shared study and run trials until it holds --trials; start one per core/machine.

    MLFLOW_TRACKING_URI (an `mlflow server`) and PREFECT_API_URL say where runs are recorded.
    """
    _params(Layout(root))
    ran = _guard(
        lambda: stage("tune").tune_worker_flow(
            root=str(root), n_trials=trials, storage=storage, study_name=study
        )
    )
    typer.echo(f"this worker ran {ran} trial(s)")


registry = typer.Typer(help="The MLflow model registry.", no_args_is_help=True)
app.add_typer(registry, name="registry")


@registry.command("import-pretrained")
def import_pretrained(root: RootOption = Path()) -> None:
    """Register the shipped pretrained FER2013 model as models:/fer2013-pretrained@champion."""
    # Deferred on purpose: MLflow loads only for the commands that use it (and never
    # TensorFlow here: the shipped model's checked ONNX export is logged as it is).
    from ferops.registry.pretrained import import_pretrained as run_import

    layout = Layout(root)
    params = _params(layout)
    outcome = _guard(lambda: run_import(params, layout))
    typer.echo(f"registered {outcome['model_name']} version {outcome['version']}")
    typer.echo(f"serve it: mlflow models serve -m {outcome['model_uri']} --env-manager local")


@registry.command("check")
def check(
    model: Annotated[str, typer.Argument(help="A models:/NAME@ALIAS or models:/NAME/VERSION URI.")],
    root: RootOption = Path(),
) -> None:
    """Say which version MODEL names and what it learned from, before serving it (`make
    serve` runs this); when the registry lacks it, an error that lists the aliases and
    versions there are. (A synthetic model's server warns about it when it starts.)"""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or Layout(root).tracking_uri
    found = _guard(lambda: registered_version(model, tracking))
    data = {SYNTHETIC: "synthetic faces", "": "unrecorded data"}.get(
        found.trained_on, found.trained_on
    )
    accuracy = "" if found.test_accuracy is None else f", test accuracy {found.test_accuracy:.3f}"
    typer.echo(f"{found.source}: trained on {data}{accuracy}")


SPANS = {"m": "minutes", "h": "hours", "d": "days"}


def span(text: str) -> timedelta | None:
    """30m, 24h, 7d as a duration; None when `text` is not a span."""
    if len(text) > 1 and text[-1] in SPANS and text[:-1].replace(".", "", 1).isdigit():
        return timedelta(**{SPANS[text[-1]]: float(text[:-1])})
    return None


def moment(text: str | None) -> datetime | None:
    """--since/--until: an ISO date or time (UTC unless it says otherwise), or a span back
    from now: 30m, 24h, 7d."""
    if text is None:
        return None
    if (back := span(text)) is not None:
        return datetime.now(UTC) - back
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an ISO time (2026-12-05T10:00) nor a span (30m, 24h, 7d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


SinceOption = Annotated[
    str | None, typer.Option(help="Answers from this time: ISO (UTC) or a span back (24h, 7d).")
]
UntilOption = Annotated[str | None, typer.Option(help="Answers before this time (as --since).")]
LastOption = Annotated[
    int | None, typer.Option(help="The latest N answers (default monitor.window without times).")
]
LogOption = Annotated[
    str | None,
    typer.Option(
        "--log",
        help="Prediction log: a folder or a postgresql:// URI (default FEROPS_PREDICTION_LOG, "
        "else logs/predictions).",
    ),
]


@app.command()
def monitor(
    context: typer.Context,
    root: RootOption = Path(),
    model: Annotated[
        str | None, typer.Option(help="Version to judge; default register's champion.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    last: LastOption = None,
    log: LogOption = None,
    reference: Annotated[
        Path | None, typer.Option(help="A reference.parquet (default: the version's own).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    track: Annotated[bool, typer.Option(help="Log the window to MLflow.")] = True,
    flow: Annotated[
        bool,
        typer.Option(
            "--flow",
            help="Judge as the Prefect flow ferops-monitor: the verdict is also its "
            "ferops-monitor artifact; prints the report as JSON.",
        ),
    ] = False,
    every: Annotated[
        str | None,
        typer.Option(
            metavar="CRON",
            help="Serve that flow on this cron schedule (UTC) until stopped, e.g. '0 6 * * *' "
            "(prefect.yaml's daily-monitor).",
        ),
    ] = None,
) -> None:
    """Judge served answers against the model's evaluation: drift of face brightness,
    contrast and sharpness, of the emotion mix and the confidence, and accuracy estimated
    without labels. Writes reports/monitoring/report.{json,html}; exit 0 whatever the verdict
    (read it from --json's `verdict`: ok, drift or too few answers)."""
    if flow or every:
        # The flow reads the log and the reference where the command does by default.
        plain_only = {
            "--until": until is not None,
            "--log": log is not None,
            "--reference": reference is not None,
            "--no-track": not track,
        }
        if given := [name for name, used in plain_only.items() if used]:
            raise typer.BadParameter(f"{', '.join(given)}: not with --flow or --every")
        flow_window = {"hours": _span_hours(since), "last": last, "model": model}
        _monitor_flow(context, root, flow_window, every)
        return
    # Deferred on purpose: MLflow, SciPy and matplotlib load only for this command.
    from ferops.ops.monitor import Window
    from ferops.ops.monitor import monitor as run_monitor

    layout = Layout(root)
    params = _params(layout)
    window = Window(moment(since), moment(until), last)
    report = _guard(
        lambda: run_monitor(
            params,
            layout,
            model=model,
            window=window,
            log_root=log,
            reference_file=reference,
            track=track,
        )
    )
    if json_output:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    typer.echo(report.summary())
    if words := report.accuracy_words():
        typer.echo(words)
    typer.echo(f"report: {layout.monitoring / 'report.html'}")


def _span_hours(since: str | None) -> float | None:
    """A flow's window moves with each run: --since is a span back from it, not a time."""
    if since is None:
        return None
    if (back := span(since)) is None:
        raise typer.BadParameter(f"{since!r}: with --flow or --every, a span back (24h, 7d)")
    return back.total_seconds() / 3600


def _monitor_flow(
    context: typer.Context, root: Path, window: dict[str, Any], every: str | None
) -> None:
    """`monitor --flow` once, or served on the `every` schedule; errors as `retrain`'s."""
    from ferops.ops.monitor_flow import monitor_flow

    parameters = {"root": str(root.resolve()), **window}
    if every:
        _in_prefect(
            context, lambda: monitor_flow.serve(name="scheduled", cron=every, parameters=parameters)
        )
        return
    report = _in_prefect(context, lambda: monitor_flow(**parameters))
    typer.echo(json.dumps(report, indent=2, default=str))


retrain = typer.Typer(
    help="Retrain on a schedule: a Prefect flow that judges the served answers, then runs "
    "`dvc repro` when the data, code or params changed (prefect.yaml deploys the same flow).",
    no_args_is_help=True,
)
app.add_typer(retrain, name="retrain")

#: Mondays at 03:00 UTC: after a weekend's answers and reviews, before the working week.
RETRAIN_CRON = "0 3 * * 1"


@retrain.command("run")
def retrain_run(
    context: typer.Context,
    root: RootOption = Path(),
    force: Annotated[bool, typer.Option(help="Retrain even when nothing changed.")] = False,
) -> None:
    """Retrain once, now; print the outcome as JSON ("Skipped" when nothing changed)."""
    from ferops.ops.retrain import retrain_flow

    outcome = _in_prefect(context, lambda: retrain_flow(root=str(root.resolve()), force=force))
    typer.echo(json.dumps(outcome, indent=2, default=str))


@retrain.command("serve")
def retrain_serve(
    context: typer.Context,
    root: RootOption = Path(),
    cron: Annotated[str, typer.Option(help="Cron schedule (UTC).")] = RETRAIN_CRON,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "scheduled",
) -> None:
    """Serve the flow on a cron schedule until stopped."""
    from ferops.ops.retrain import retrain_flow

    parameters = {"root": str(root.resolve())}
    _in_prefect(context, lambda: retrain_flow.serve(name=name, cron=cron, parameters=parameters))


def _in_prefect(context: typer.Context, action: Callable[[], T]) -> T:
    """Run a flow (retrain or monitor); a failure ends in one line naming the cause, and the
    stage where one failed (with -v, the traceback). The line is printed at exit: Prefect logs
    its temporary server's stop from an exit handler, and the reason should be the last line."""
    verbose = bool(context.find_root().params.get("verbose"))
    if not verbose:
        quiet_console_tracebacks()
    failure: list[str] = []  # registered first, so printed after Prefect's own exit handler
    atexit.register(lambda: failure and print(failure[0], file=sys.stderr))
    try:
        return action()
    except Exception as exc:
        if verbose:
            raise
        line = _user_error(exc, summary=True) or f"{type(exc).__name__}: {first_line(exc)}"
        failure.append(f"error: {line} (-v for the traceback)")
        raise typer.Exit(code=1) from None


feedback = typer.Typer(help="Reviewed production faces back into the data.", no_args_is_help=True)
app.add_typer(feedback, name="feedback")


@feedback.command("export")
def feedback_export(
    out: Annotated[Path, typer.Argument(help="A new folder for the review.")],
    root: RootOption = Path(),
    since: SinceOption = None,
    until: UntilOption = None,
    last: LastOption = None,
    log: LogOption = None,
) -> None:
    """Write logged faces (kept only with FEROPS_PREDICTION_LOG_FACES=1) to OUT/<predicted
    emotion>/ with OUT/manifest.csv. Review by moving a file to the right emotion's folder
    or by filling the manifest's label column; then `ferops feedback import OUT`."""
    from ferops.ops.feedback import export
    from ferops.ops.monitor import Window

    window = Window(moment(since), moment(until), last)
    count = _guard(lambda: export(Layout(root), out, window, log))
    typer.echo(f"{count} face(s) in {out}/<emotion>/, listed in {out / 'manifest.csv'}")


@feedback.command("import")
def feedback_import(
    folder: Annotated[Path, typer.Argument(help="A reviewed export.")],
    root: RootOption = Path(),
) -> None:
    """Check a reviewed export (known emotions, 48x48 faces, no val/test copy, nothing
    imported twice) and add it as a DVC-tracked batch under data/feedback/; `dvc repro` then
    trains on it, except the production slice (feedback.holdout_fraction) evaluate scores."""
    from ferops.ops.feedback import import_review

    layout = Layout(root)
    params = _params(layout)
    batch = _guard(lambda: import_review(params, layout, folder))
    typer.echo(f"imported into {batch}; `dvc repro` retrains on it (commit {batch.name}.dvc)")


def _params(layout: Layout) -> Params:
    params = _guard(lambda: load_params(layout.params))
    if _loads_tensorflow:
        import_tensorflow_quietly()
    return params


def _guard(action: Callable[[], T]) -> T:
    """Run `action`; an error the user can act on becomes its message and exit status 1, any
    other (a bug) keeps its traceback."""
    try:
        return action()
    except (FeropsError, RuntimeError) as exc:
        if (message := _user_error(exc)) is None:
            raise
        _fail(message)


def _user_error(exc: BaseException, *, summary: bool = False) -> str | None:
    """The one mapping from errors to what the user reads: a ferops error's message (its
    one-line summary with `summary`), a temporary Prefect server that did not start; None for
    anything else. `_guard` and `_in_prefect` both answer through it."""
    if isinstance(exc, FeropsError):
        return exc.summary if summary else str(exc)
    return server_start_failure(exc)


def _fail(message: str) -> Any:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def flow_file(prog: str, command: list[str], args: list[str]) -> None:
    """A flow file's command line (flows/*.py, prefect.yaml's entry points): `ferops COMMAND
    ARGS`, with -v (anywhere) as ferops' own option."""
    verbose = [arg for arg in args if arg in ("-v", "--verbose")]
    rest = [arg for arg in args if arg not in verbose]
    app([*verbose[:1], *command, *rest], prog_name=prog)


if __name__ == "__main__":
    app()
