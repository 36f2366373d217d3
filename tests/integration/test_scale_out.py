"""Scale-out tuning: worker processes share one Optuna study on a real PostgreSQL and log to
one real MLflow tracking server (PostgreSQL backend store) and a real Prefect server, all three
asking for a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from ferops.data.faceset import save_faceset
from ferops.ops.services import (
    Credentials,
    client_environment,
    local_postgres,
    mlflow_server,
    prefect_server,
)
from tests.helpers import tiny_params_file

FEROPS = str(Path(sys.executable).parent / "ferops")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """PostgreSQL on loopback (databases optuna and mlflow), an MLflow server on top and a
    Prefect server, once for the module: each test names its own study."""
    logs = tmp_path_factory.mktemp("servers")
    credentials = Credentials.kept_in(None)
    with (
        local_postgres(["optuna", "mlflow", "predictions"], credentials) as postgres,
        mlflow_server(
            f"{postgres}/mlflow", logs / "artifacts", logs / "mlflow.log", credentials
        ) as tracking,
        prefect_server(logs / "prefect", logs / "prefect.log", credentials) as prefect_api,
    ):
        yield f"{postgres}/optuna", tracking, prefect_api, credentials, postgres


def test_the_servers_refuse_requests_without_the_password(servers):
    import psycopg

    storage, tracking, prefect_api, credentials, _ = servers
    anonymous = storage.replace(f":{credentials.password}@", "@")
    wrong = storage.replace(f":{credentials.password}@", ":guess@")
    for url in (anonymous, wrong):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=10).close()
    psycopg.connect(storage, connect_timeout=10).close()

    search = f"{tracking}/api/2.0/mlflow/experiments/search?max_results=1"
    flows = (f"{prefect_api}/flows/filter", b"{}")
    for url, body in ((search, None), flows):
        assert http_status(url, body) == 401
        assert http_status(url, body, ("ferops", "guess")) == 401
        assert http_status(url, body, (credentials.user, credentials.password)) == 200


def http_status(url: str, body: bytes | None, login: tuple[str, str] | None = None) -> int:
    import base64
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def tiny_project(root: Path, faceset) -> Path:
    tiny_params_file(root)
    save_faceset(faceset, root / "data" / "processed")
    return root


def test_two_workers_fill_one_study_exactly(tmp_path, tiny_faceset, servers, monkeypatch):
    storage, tracking, prefect_api, credentials, _ = servers
    project = tiny_project(tmp_path / "project", tiny_faceset)
    for key, value in client_environment(credentials).items():
        monkeypatch.setenv(key, value)  # this process reads the results below
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "PREFECT_API_URL": prefect_api,
        "FEROPS_OPTUNA_STORAGE": storage,  # the password stays off the command line
    }
    command = [FEROPS, "tune-worker", "--root", str(project), "--study", "shared", "--trials", "6"]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # none lost, none duplicated
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    ran = [int(output.split("this worker ran ")[1].split()[0]) for output in outputs]
    assert sum(ran) == 6

    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("ferops-synthetic")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`ferops.in_study` = 'shared'"
    )
    assert sorted(int(r.data.tags["ferops.trial"]) for r in runs) == list(range(6))
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`ferops.study` = 'shared'"
    )
    assert len(parents) == 1  # two workers starting together made one parent run
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}
    assert {r.data.tags["ferops.worker"] for r in runs} == {t.user_attrs["worker"] for t in trials}
    assert all(r.data.metrics["best_val_accuracy"] > 0 for r in runs)


def test_the_tune_stage_then_writes_reports_from_the_shared_study(
    tmp_path, tiny_faceset, servers, prefect_api, monkeypatch
):
    """After the workers, `ferops tune` on the same study runs no trial and only reports."""
    storage, tracking, _, credentials, _ = servers
    project = tiny_project(tmp_path / "project", tiny_faceset)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    for key, value in client_environment(credentials).items():
        monkeypatch.setenv(key, value)
    from ferops.pipeline.tune import tune_flow, tune_worker_flow

    assert tune_worker_flow(root=str(project), n_trials=2, storage=storage, study_name="s") == 2
    summary = tune_flow(root=str(project), n_trials=2, storage=storage, study_name="s")
    assert summary["complete"] + summary["pruned"] == 2
    assert "password" not in summary["storage"] and summary["storage"].endswith("/optuna")
    assert (project / "reports" / "tuning" / "best_params.json").is_file()


def test_several_servers_log_their_answers_to_one_postgresql_table(servers, tiny_faceset):
    """Two writers (as two server processes would) flush to one table; a reader gets every
    row, oldest first, faces included where kept; no message shows the password."""
    import numpy as np

    from ferops.prediction_log.database import without_password
    from ferops.prediction_log.records import Answerer, Answers, LogSettings
    from ferops.prediction_log.store import read_log

    *_, credentials, postgres = servers
    uri = f"{postgres}/predictions"
    faces = tiny_faceset["test"].x[:6]
    probabilities = np.full((6, 7), 1 / 7, np.float32)
    for number, keep in enumerate((False, True)):
        settings = LogSettings(uri, keep_faces=keep, flush_seconds=60)
        log = settings.open()
        answerer = Answerer("models:/m/1", "abc", f"server-{number}")
        for i in range(3):
            face = slice(3 * number + i, 3 * number + i + 1)
            log.append(Answers(answerer, faces[face], probabilities[face], [(48, 48)], 4.0, keep))
        log.close()
        assert log.dropped == 0
        assert credentials.password not in str(settings) and "***" in str(settings)
    rows = read_log(uri)
    assert rows["source"].tolist() == ["server-0"] * 3 + ["server-1"] * 3
    assert rows["face_png"].isna().sum() == 3 and all(
        isinstance(f, bytes) for f in rows["face_png"][3:]
    )
    assert rows["brightness"].tolist() == pytest.approx(faces.mean(axis=(1, 2)).tolist(), rel=1e-4)
    assert credentials.password not in without_password(uri)
