"""A copied project's MLflow store is refused until `ferops relocate` points it at the copy;
then every artifact location is the copy's own and MLflow reads the copy's files."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ferops.install.moved_store import LOCATION_COLUMNS, relocate
from ferops.kernel.layout import tracking_uri
from ferops.kernel.local_store import StoreMoved


def test_a_copied_store_is_refused_then_relocated_to_the_copy(tmp_path, monkeypatch):
    import mlflow

    from ferops.kernel.config import DataConfig
    from ferops.training.tracking import use_experiment

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original = tmp_path / "original"
    original.mkdir()
    use_experiment(original, DataConfig())
    with mlflow.start_run():
        (tmp_path / "note.txt").write_text("from the original")
        mlflow.log_artifact(str(tmp_path / "note.txt"))
        mlflow.set_tag("ferops.optuna_storage", f"sqlite:///{original / 'optuna.db'}")
        run_id = mlflow.active_run().info.run_id

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)  # the original stays: the copy must not use its files
    (original / "mlartifacts" / run_id / "artifacts" / "note.txt").write_text("changed later")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri sets it
    with pytest.raises(StoreMoved, match=f"copied or moved from {original}"):
        tracking_uri(copy)

    moved = relocate(copy / "mlflow.db")
    assert moved.old_root == original and moved.rows >= 2  # the experiment and the run
    with sqlite3.connect(copy / "mlflow.db") as connection:
        for table, column in LOCATION_COLUMNS:
            values = [v for (v,) in connection.execute(f"SELECT {column} FROM {table}") if v]
            assert not [v for v in values if str(original) in v], (table, column)
    mlflow.set_tracking_uri(tracking_uri(copy))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    note = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="note.txt")
    assert Path(note).read_text() == "from the original"
    storage = mlflow.MlflowClient().get_run(run_id).data.tags["ferops.optuna_storage"]
    assert storage == f"sqlite:///{copy / 'optuna.db'}"
    assert relocate(copy / "mlflow.db").rows == 0  # once is enough
    assert tracking_uri(original).endswith("original/mlflow.db")  # the original is untouched
