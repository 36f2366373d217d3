"""Where each stage reads and writes, relative to the project root (the folder with dvc.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ferops.kernel.local_store import check_in_place

DEFAULT_TRACKING_DB = "mlflow.db"
# What served answers are compared with: evaluate writes it in reports/evaluation/, register
# logs it with the version under evaluation/, ferops monitor reads it from there.
REFERENCE_FILE = "reference.parquet"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite database at the project root (refused,
    naming `ferops relocate`, when it was copied from another folder and still points there)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = (root / DEFAULT_TRACKING_DB).resolve()
    check_in_place(db)
    return f"sqlite:///{db}"


def recorded_uri(uri: str, root: Path) -> str:
    """`uri` as a committed report holds it: the project's own SQLite store relative to the
    project root (where DVC runs the stages), so a clone or a moved folder still finds it;
    any other store (a server, a database) as it is."""
    sqlite = "sqlite:///"
    own = (root / DEFAULT_TRACKING_DB).resolve()
    if uri.startswith(sqlite) and Path(uri.removeprefix(sqlite)).resolve() == own:
        return f"{sqlite}{DEFAULT_TRACKING_DB}"
    return uri


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding a params.yaml: the project a command
    run from a subfolder belongs to."""
    start = start.resolve()
    return next((f for f in (start, *start.parents) if (f / "params.yaml").is_file()), None)


@dataclass(frozen=True)
class Layout:
    root: Path = Path()

    @property
    def tracking_uri(self) -> str:
        return tracking_uri(self.root)

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def ingest_report(self) -> Path:
        return self.reports / "ingest.json"

    @property
    def preprocess_report(self) -> Path:
        return self.reports / "preprocess.json"

    @property
    def validation(self) -> Path:
        return self.reports / "validation"

    @property
    def model(self) -> Path:
        return self.root / "models" / "model.keras"

    @property
    def train_state(self) -> Path:
        """Checkpoints of a training run in progress (git- and DVC-ignored; gone when done)."""
        return self.root / "models" / ".train-state"

    @property
    def training(self) -> Path:
        return self.reports / "training"

    @property
    def training_run(self) -> Path:
        return self.training / "run.json"

    @property
    def promotion(self) -> Path:
        return self.reports / "promotion.json"

    @property
    def tuning(self) -> Path:
        return self.reports / "tuning"

    @property
    def best_params(self) -> Path:
        return self.tuning / "best_params.json"

    @property
    def evaluation(self) -> Path:
        return self.reports / "evaluation"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def monitoring(self) -> Path:
        """ferops monitor's latest report (report.json, report.html)."""
        return self.reports / "monitoring"

    @property
    def prediction_log(self) -> Path:
        """Where `make serve` records answers unless FEROPS_PREDICTION_LOG says otherwise."""
        return self.root / "logs" / "predictions"

    @property
    def feedback(self) -> Path:
        """Reviewed production faces, one DVC-tracked folder per import; ingest reads them."""
        return self.root / "data" / "feedback"
