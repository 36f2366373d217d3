"""After deployment, with real parts: a model evaluated and registered with its reference, a
real `mlflow models serve` logging every answer, then `ferops monitor` over windows of that
log. Faces like the test split are `ok`; darkened, blurred faces with a skewed mix of
emotions are `drift`, named; the estimated accuracy tracks the measured one on two mixes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.data.faceset import Split, save_faceset
from ferops.data.synthetic import generate_faces
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.layout import REFERENCE_FILE, Layout
from ferops.pipeline.evaluate import run as evaluate
from tests.helpers import (
    REPO,
    encoded,
    free_port,
    latest_artifact,
    register_in,
    tiny_params_file,
    trained_project,
    wait_until_serving,
)

MODEL = "fer-monitor-test"
# Traffic sizes: large enough that the estimate's sampling error (about 0.03) sits well inside
# the margin, and the drift tests have power; small enough for a 2-core machine.
PER_WINDOW = 280
# Estimated against measured accuracy: the reference's calibration error (420 faces) plus the
# sampling error of both, on any CPU's training of the model.
MARGIN = 0.15


# Clean frontal faces: a small model learns them in seconds to about half right, enough for
# the estimate to have something to track.
DIFFICULTY = 0.0


def faces_of(labels: np.ndarray, seed: int) -> np.ndarray:
    return generate_faces(labels, rng=np.random.default_rng(seed), difficulty=DIFFICULTY)


def darkened_and_blurred(faces: np.ndarray) -> np.ndarray:
    dark = (faces.astype(np.float32) * 0.45).astype(np.uint8)
    return np.stack([cv2.GaussianBlur(f, (0, 0), 1.6) for f in dark])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project whose registered champion was evaluated on 420 test faces, served with the
    prediction log on; yields (project, send) where send(faces) returns the answers."""
    root = tmp_path_factory.mktemp("monitored")
    tiny_params_file(root, **{"register.model_name": MODEL})
    rng = np.random.default_rng(7)
    faceset = {}
    for split, per_class in (("train", 60), ("val", 10), ("test", 60)):
        labels = np.repeat(np.arange(7), per_class).astype(np.int8)
        rng.shuffle(labels)
        faces = generate_faces(labels, rng=rng, difficulty=DIFFICULTY)
        faceset[split] = Split(
            faces, labels, [f"synthetic:{split}:{i}" for i in range(len(labels))]
        )
    layout = trained_project(root, faceset, epochs=8)
    save_faceset(faceset, layout.interim)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        from ferops.kernel.config import load_params

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        params = load_params(layout.params)
        evaluate(params, layout)  # no run record yet: the reference and metrics only
        register_in(root, params, faceset)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **served_log(root),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FEROPS_PREDICTION_LOG_FLUSH_SECONDS": "0.3",
        "FEROPS_SERVED_MODEL": f"models:/{MODEL}@champion",
    }
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=(root / "server.log").open("w"),
        start_new_session=True,
    )  # fmt: skip

    def send(faces: np.ndarray) -> np.ndarray:
        answers = []
        for start in range(0, len(faces), 40):
            rows = [[encoded(f)] for f in faces[start : start + 40]]
            body = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers += [row["emotion"] for row in json.loads(response.read())["predictions"]]
        return np.array(answers)

    try:
        wait_until_serving(port, server, root / "server.log")
        yield root, send
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def served_log(root: Path) -> dict[str, str]:
    """Where `ferops monitor` finds the project's registry and the served answers."""
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FEROPS_PREDICTION_LOG": str(root / "logs" / "predictions"),
    }


def monitor(root: Path, since: datetime, *extra: str) -> dict:
    time.sleep(0.8)  # the server flushes its queue every 0.3 s
    result = CliRunner().invoke(
        app,
        ["monitor", "--root", str(root), "--since", since.isoformat(), "--json", *extra],
        env=served_log(root),
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_faces_like_the_test_split_are_ok_and_the_estimate_tracks_two_mixes(served):
    """A balanced window of faces like the test split is `ok`. A second window holds only
    the three emotions the model got right most often at evaluation: accuracy rises, and
    the estimate must rise with it and stay near it (the mix alone moves the emotion PSI)."""
    root, send = served
    reference = pd.read_parquet(Layout(root).evaluation / REFERENCE_FILE)
    right = (reference["emotion"] == reference["label"]).groupby(reference["label"]).mean()
    easy = [EMOTIONS.index(e) for e in right.sort_values().index[-3:]]
    windows = []
    for seed, classes in ((101, list(range(7))), (202, easy)):
        since = datetime.now(UTC)
        labels = np.repeat(classes, PER_WINDOW // len(classes))
        answers = send(faces_of(labels, seed=seed))
        measured = float((answers == np.array(EMOTIONS)[labels]).mean())
        windows.append((monitor(root, since), measured))
    (balanced, measured_balanced), (easy_mix, measured_easy) = windows
    assert balanced["verdict"] == "ok", balanced["reasons"]
    assert balanced["reference_ece"] is not None
    assert (root / "reports" / "monitoring" / "report.html").is_file()
    for report, measured in windows:
        assert abs(report["estimated_accuracy"] - measured) < MARGIN, (report, measured)
    if measured_easy > measured_balanced + 0.05:
        assert easy_mix["estimated_accuracy"] > balanced["estimated_accuracy"], windows


def test_darkened_blurred_skewed_traffic_is_drift_naming_those_statistics(served):
    root, send = served
    since = datetime.now(UTC)
    labels = np.repeat([3, 3, 3, 4], PER_WINDOW // 4)
    send(darkened_and_blurred(faces_of(labels, seed=303)))
    report = monitor(root, since)
    assert report["verdict"] == "drift"
    named = " ".join(report["reasons"])
    for measure in ("brightness", "sharpness", "emotion"):
        assert f"{measure} PSI" in named, report["reasons"]
    html = (root / "reports" / "monitoring" / "report.html").read_text()
    assert "drift" in html and "http" not in html.split("<body>")[1]  # nothing to fetch


def test_few_answers_is_a_verdict_and_each_window_is_a_step_in_mlflow(served):
    root, send = served
    since = datetime.now(UTC)
    send(faces_of(np.arange(7), seed=404))
    report = monitor(root, since)
    assert report["verdict"] == "too few answers"
    assert "monitor.min_answers" in report["reasons"][0]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name(f"{MODEL}-monitoring").experiment_id])
    assert len(runs) == 1  # one monitoring run per version, one step per window judged
    history = client.get_metric_history(runs[0].info.run_id, "brightness_psi")
    assert len(history) >= 1 and [m.step for m in history] == list(range(len(history)))
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags["monitor"].split()[0] in ("ok", "drift")


def test_the_flow_file_judges_as_the_command_does_and_publishes_the_verdict(served, prefect_api):
    """`python flows/monitor.py` (prefect.yaml's entry point, `ferops monitor --flow`): on the
    same window, the plain command's verdict, reasons and estimate, and the verdict is the
    `ferops-monitor` artifact the Prefect UI shows."""
    from ferops.ops.monitor_flow import ARTIFACT_KEY

    root, send = served
    send(faces_of(np.repeat(np.arange(7), PER_WINDOW // 7), seed=505))
    window = ["--last", str(PER_WINDOW)]
    plain = monitor(root, datetime(2000, 1, 1, tzinfo=UTC), *window)
    assert plain["verdict"] != "too few answers" and plain["estimated_accuracy"] is not None
    env = {**os.environ, **served_log(root), "PREFECT_API_URL": prefect_api}
    flowed = subprocess.run(
        [sys.executable, str(REPO / "flows" / "monitor.py"), "--root", str(root), *window],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert flowed.returncode == 0, flowed.stderr[-3000:]
    judged = json.loads(flowed.stdout)
    for key in ("verdict", "answers", "reasons", "estimated_accuracy"):
        assert judged[key] == plain[key], key
    assert f"**{plain['verdict']}**" in latest_artifact(ARTIFACT_KEY).data
