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
            run_file=layout.training / "run.json",
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
            run_file=layout.training / "run.json",
            evaluation_dir=layout.evaluation,
            metrics_path=layout.metrics,
            promotion_path=layout.reports / "promotion.json",
            root=layout.root,
        )
    )


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
