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
def train(root: RootOption = Path()) -> None:
    """Train the tuned (or configured) model on data/processed; log the run to MLflow."""
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


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files (any size or colour).")],
    model: Annotated[str | None, typer.Option(help="Model URI; default the champion.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    root: RootOption = Path(),
) -> None:
    """Classify face images with the served pyfunc (the registry's champion by default)."""
    import base64
    import json

    import mlflow
    import pandas as pd

    from ferops.tracking import tracking_uri

    layout = Layout(root)
    params = _params(layout)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        typer.secho(f"error: not found: {', '.join(missing)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    mlflow.set_tracking_uri(tracking_uri(layout.root))
    uri = model or f"models:/{params.register.model_name}@champion"
    classifier = mlflow.pyfunc.load_model(uri)
    request = pd.DataFrame({"image": [base64.b64encode(p.read_bytes()).decode() for p in images]})
    try:
        table = classifier.predict(request)
    except mlflow.exceptions.MlflowException as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    table.insert(0, "image", [str(p) for p in images])
    if json_output:
        for record in table.to_dict(orient="records"):
            typer.echo(json.dumps(record))
    else:
        typer.echo(table.round(3).to_string(index=False))


@app.command()
def tune(
    root: RootOption = Path(),
    trials: Annotated[int | None, typer.Option(help="Total trials; default tune.n_trials.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name to create or resume.")] = None,
) -> None:
    """Search model variants and optimiser settings with Optuna, as a Prefect flow."""
    from ferops.tuning import tune_flow

    _guard(lambda: tune_flow(root=str(root), n_trials=trials, storage=storage, study_name=study))


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
