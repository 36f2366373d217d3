"""End to end on one tiny project: the first scheduled retrain runs `dvc repro` through every
stage; the tests then read its outputs, rerun it, retrain, break it and clone it.

The pipeline runs once for the module (it is the expensive part); the tests share the project
and run in file order: each one states the registry versions it expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import REPO, copy_project, latest_artifact, make_folder, run, set_params

STAGES = ("ingest", "preprocess", "validate", "tune", "train", "evaluate", "register")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    """A fresh copy of the repository after its first retrain: the flow around `dvc repro`."""
    from ferops.ops.retrain import retrain_flow

    project = copy_project(tmp_path_factory.mktemp("pipeline") / "repo")
    return project, retrain_flow(root=str(project))


def champion_version(project: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    return str(client.get_model_version_by_alias("fer-attention-cnn", "champion").version)


def latest_promotion_artifact():
    from ferops.ops.retrain import ARTIFACT_KEY

    return latest_artifact(ARTIFACT_KEY)


def search_flow_run(project: Path) -> tuple[str, object]:
    """The flow name and run of the Prefect flow run that ran the project's search, found from
    the search's MLflow parent run (its tag), so other workers' runs on the same server do not
    count."""
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client

    from ferops.pipeline.tune import FLOW_RUN_TAG

    tracking = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in tracking.search_experiments()]
    (search,) = tracking.search_runs(experiments, f"tags.`{FLOW_RUN_TAG}` LIKE '%'")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(search.data.tags[FLOW_RUN_TAG])
        return client.read_flow(flow_run.flow_id).name, flow_run


def repro_attempts(flow_run_id) -> int:
    """How many times the flow run's `dvc-repro` task ran (retries included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return next(run.run_count for run in runs if run.name.startswith("dvc-repro"))


def latest_repro_task_log() -> str:
    """What the latest `dvc-repro` task logged to Prefect (what its UI shows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        LogFilter,
        LogFilterTaskRunId,
        TaskRunFilter,
        TaskRunFilterName,
    )
    from prefect.client.schemas.sorting import LogSort, TaskRunSort

    with get_client(sync_client=True) as client:
        (task_run,) = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="dvc-repro")),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
        only_it = LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run.id]))
        messages: list[str] = []
        while page := client.read_logs(
            log_filter=only_it, limit=200, offset=len(messages), sort=LogSort.TIMESTAMP_ASC
        ):
            messages += [entry.message for entry in page]
    return "\n".join(messages)


def test_the_first_retrain_runs_every_stage_and_publishes_the_decision(first_run):
    from prefect.client.orchestration import get_client

    project, result = first_run
    assert result["retrained"] and set(STAGES) <= set(result["changed"])
    assert result["alias"] == "champion" and result["version"] == 1 and result["register_ran"]
    assert champion_version(project) == "1"

    reports = project / "reports"
    assert (reports / "validation" / "data_docs" / "index.html").is_file()
    assert json.loads((reports / "validation" / "result.json").read_text())["success"]
    assert json.loads((reports / "tuning" / "summary.json").read_text())["complete"]
    assert (reports / "training" / "history.csv").is_file()
    assert (project / "data" / "processed" / "test.npz").is_file()
    assert (project / "models" / "model.keras").is_file()
    promotion = json.loads((reports / "promotion.json").read_text())
    assert promotion["alias"] == "champion" and promotion["version"] == 1

    dag = run(["dvc", "dag"], project).stdout
    assert all(stage in dag for stage in STAGES)
    assert "accuracy" in run(["dvc", "metrics", "show"], project).stdout
    # DVC's metrics describe the model, headline first; timings live in run.json.
    headline = list(json.loads((reports / "metrics.json").read_text()))[:3]
    assert headline == ["accuracy", "macro_f1", "expected_calibration_error"]
    trained = json.loads((reports / "training" / "metrics.json").read_text())
    assert "seconds" not in trained and "train_images_per_second" not in trained
    assert json.loads((reports / "training" / "run.json").read_text())["timing"]["seconds"] > 0

    artifact = latest_promotion_artifact()
    markdown = artifact.data
    assert "version 1: promoted to **champion**" in markdown
    run_id = json.loads((reports / "training" / "run.json").read_text())["run_id"]
    assert f"/runs/{run_id})" in markdown  # a link to the training run in MLflow
    assert f"{result['candidate_accuracy']:.4f}" in markdown
    # The links say which store they belong to and how to open its UI (a SQLite store here).
    assert (
        f"mlflow ui --backend-store-uri sqlite:///{(project / 'mlflow.db').resolve()}" in markdown
    )

    # Each stage's own output is in the task's Prefect log, as it ran.
    task_log = latest_repro_task_log()
    for stage in STAGES:
        assert f"Running stage '{stage}'" in task_log, stage
    assert "test accuracy" in task_log  # evaluate's own line
    # The tune stage's search flow reported to the retrain's server, inside the retrain.
    name, search = search_flow_run(project)
    with get_client(sync_client=True) as client:
        retrain = client.read_flow_run(artifact.flow_run_id)
    assert name == "ferops-tune"
    assert retrain.start_time < search.start_time < search.end_time < retrain.end_time


def test_nothing_changed_means_no_retraining_unless_forced(first_run):
    from ferops.ops.retrain import retrain_flow

    project, _ = first_run
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], project).stdout
    skipped = retrain_flow(root=str(project), return_state=True)
    assert skipped.is_completed() and skipped.name == "Skipped"  # as the Prefect UI shows it
    outcome = skipped.result()
    assert not outcome["retrained"] and outcome["changed"] == [] and outcome["trigger"] == "data"
    # The monitor ran first: nothing served yet, which it says, naming where it looked.
    assert (
        outcome["monitor"].startswith("too few answers")
        and "logs/predictions" in (outcome["monitor"])
    )

    forced = retrain_flow(root=str(project), force=True)
    # Same data, same seed: an identical model, which the gate refuses to promote.
    assert forced["retrained"] and forced["register_ran"] and forced["version"] == 2
    assert forced["alias"] == "challenger" and champion_version(project) == "1"
    assert "version 2: kept as **challenger**" in latest_promotion_artifact().data


def test_bad_data_fails_validate_and_keeps_the_last_good_outputs(first_run):
    """A split below its minimum: validate fails and names the expectation."""
    project, _ = first_run
    good_report = (project / "reports" / "validation" / "result.json").read_bytes()
    good_data = (project / "data" / "processed" / "train.npz").read_bytes()
    params_before = (project / "params.yaml").read_text()
    set_params(project, **{"validate.min_split_size": {"train": 50, "val": 20, "test": 500}})
    try:
        failed = run(["dvc", "repro"], project, check=False)
    finally:
        (project / "params.yaml").write_text(params_before)
    assert failed.returncode != 0
    assert "split_size" in failed.stdout + failed.stderr
    assert (project / "reports" / "validation" / "result.json").read_bytes() == good_report
    assert (project / "data" / "processed" / "train.npz").read_bytes() == good_data


def test_a_failing_stage_fails_the_retrain_loudly_and_keeps_the_champion(first_run):
    from ferops.ops.retrain import retrain_flow

    project, _ = first_run
    params_before = (project / "params.yaml").read_text()
    promotion_before = (project / "reports" / "promotion.json").read_bytes()
    faces = make_folder(project / "data" / "raw" / "faces", per_class=3)
    (faces / "train" / "happiness" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    set_params(project, **{"data.source": "image-folder", "data.path": "data/raw/faces"})
    try:
        state = retrain_flow(root=str(project), retries=1, return_state=True)
    finally:
        (project / "params.yaml").write_text(params_before)
        shutil.rmtree(faces)
    assert state.is_failed()
    message = str(state.message) + repr(state.result(raise_on_failure=False))
    assert "stage 'ingest'" in message and "corrupt.png" in message
    assert repro_attempts(state.state_details.flow_run_id) == 1  # bad data: no retry
    assert champion_version(project) == "1"
    assert (project / "reports" / "promotion.json").read_bytes() == promotion_before


def test_the_retrain_command_ends_a_failure_with_one_line_naming_stage_and_cause(
    first_run, prefect_api
):
    """`ferops retrain run` on a params typo: no traceback, one line that names the stage and
    the cause; `ferops -v` shows the traceback. (`flows/retrain.py` runs the same command: the
    stop test below drives it.)"""
    project, _ = first_run
    params_before = (project / "params.yaml").read_text()
    set_params(project, **{"train.epoch": 3})
    ferops = str(Path(sys.executable).parent / "ferops")
    env = {"PREFECT_API_URL": prefect_api}
    try:
        quiet = run([ferops, "retrain", "run"], project, check=False, env=env)
        verbose = run([ferops, "-v", "retrain", "run"], project, check=False, env=env)
    finally:
        (project / "params.yaml").write_text(params_before)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    # train is the first stage to run: tune depends only on the train.* settings trials use
    last = quiet.stderr.strip().splitlines()[-1]
    assert last == (
        "error: retraining failed at stage 'train': params.yaml: unknown key train.epoch; "
        "did you mean train.epochs? (the champion alias was not touched) (-v for the traceback)"
    )
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
    assert champion_version(project) == "1"


def test_dvc_push_then_pull_restores_the_outputs_in_a_fresh_clone(first_run, tmp_path):
    project, _ = first_run
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pipeline outputs"], project)
    run(["dvc", "push"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    outputs = ["models/model.keras", *(f"data/processed/{s}.npz" for s in ("train", "val", "test"))]
    assert not any((clone / name).exists() for name in outputs)
    run(["dvc", "pull"], clone)
    for name in outputs:
        assert digest(clone / name) == digest(project / name), name
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone).stdout


def test_dvc_plots_draw_each_figure_once_in_fer_order_and_offline(first_run, tmp_path):
    from ferops.install.web_assets import default_dir

    project, _ = first_run
    template = default_dir() / "dvc-plots.html"
    offline = (default_dir() / "vega@5.33.0").is_dir()
    if offline:  # as `make install` configures it
        run(["dvc", "config", "--local", "plots.html_template", str(template)], project)
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], project)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert page.count("vegaEmbed('#") == 2  # the confusion matrix and the learning curves
    fer_order = '["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]'
    assert f'"sort": {fer_order}' in page
    assert '"title": "actual"' in page and '"field": "actual"' in page  # actual on rows (y)
    for figure in ("confusion_matrix", "reliability", "per_class", "optimization_history"):
        assert f"{figure}.png" in page, figure
    if offline:
        assert "cdn.jsdelivr.net" not in page and ".vegaEmbed=t(e.vega,e.vegaLite)" in page


def test_dvc_params_diff_shows_the_tuned_values_the_model_trains_with(first_run):
    """Against the commit the push test made: the search's values are params of train."""
    project, _ = first_run
    tuned = project / "reports" / "tuning" / "best_params.json"
    before = tuned.read_text()
    searched = json.loads(before)
    searched["params"]["learning_rate"] = 0.0123
    tuned.write_text(json.dumps(searched))
    try:
        diff = run(["dvc", "params", "diff"], project).stdout
    finally:
        tuned.write_text(before)
    (line,) = [row for row in diff.splitlines() if "params.learning_rate" in row]
    assert line.split()[0] == "reports/tuning/best_params.json" and line.split()[-1] == "0.0123"


def test_the_deployment_carries_the_cron_schedule(tmp_path, prefect_api):
    """`prefect deploy` from prefect.yaml, and `flow.to_deployment`, both keep the schedule."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from ferops.ops.retrain import retrain_flow

    sys.path.insert(0, str(REPO / "flows"))
    try:
        from retrain import DEFAULT_CRON  # flows/retrain.py
    finally:
        sys.path.remove(str(REPO / "flows"))
    served = retrain_flow.to_deployment(name="scheduled", cron=DEFAULT_CRON)
    assert served.schedules[0].schedule.cron == DEFAULT_CRON

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"][0]
    shutil.copytree(REPO / "flows", tmp_path / "flows")
    shutil.copy(REPO / "prefect.yaml", tmp_path / "prefect.yaml")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=config["work_pool"]["name"], type="process"))
    prefect = str(Path(sys.executable).parent / "prefect")
    run([prefect, "--no-prompt", "deploy", "--all"], tmp_path, env={"PREFECT_API_URL": prefect_api})
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"ferops-retrain/{config['name']}")
    assert deployment.schedules[0].schedule.cron == config["schedules"][0]["cron"] == DEFAULT_CRON
    assert deployment.work_pool_name == "ferops-process"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stop_mid_train(project: Path, command: list[str], env: dict[str, str]) -> None:
    """Start `command`, SIGTERM it once the trainer has logged another epoch, and wait until
    no trainer lives on (none holds the state's lock)."""
    from ferops.kernel.process import StateInUse, sole_owner

    history = project / "models" / ".train-state" / "history.csv"
    logged = len(history.read_text().splitlines()) if history.is_file() else 1
    output = project.parent / "stopped.log"
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # `ferops` for the stages
    with output.open("w") as sink:
        process = subprocess.Popen(
            command, cwd=project, stdout=sink, stderr=sink,
            env={**os.environ, "PATH": path, **env},
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (history.is_file() and len(history.read_text().splitlines()) > logged + 1):
        running = process.poll() is None and time.monotonic() < deadline
        assert running, f"train never got going:\n{output.read_text()[-3000:]}"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)

    lock = project / "models" / ".train-state.lock"
    deadline = time.monotonic() + 60
    while True:  # the trainer is gone once its lock is free
        try:
            with sole_owner(lock, "train state"):
                break
        except StateInUse:
            assert time.monotonic() < deadline, f"the trainer outlived {command[:2]}"
            time.sleep(0.2)
    assert history.is_file()  # stopped mid-train: the resumable state is still there


def test_stopping_the_flow_or_dvc_mid_train_stops_the_trainer_and_a_rerun_completes(
    first_run, prefect_api
):
    """SIGTERM to the retrain flow, then to `dvc repro`, while `ferops train` runs: no trainer
    lives on either time; a rerun of train resumes and finishes, and history, metrics and
    config agree (evaluate and register, which would follow, are the feedback test's)."""
    project, _ = first_run
    # Only settings the search does not read (search.space.TRIAL_TRAIN_SETTINGS): tune stays
    # done, and train alone runs, long enough (epochs of about a second) to be stopped twice
    # (after two epochs each time) and finished by the rerun.
    epochs = 12
    set_params(project, **{"train.epochs": epochs, "train.patience": epochs})
    flow = [sys.executable, "flows/retrain.py", "run"]
    stop_mid_train(project, flow, {"PREFECT_API_URL": prefect_api})
    stop_mid_train(project, [str(Path(sys.executable).parent / "dvc"), "repro"], {})

    run(["dvc", "repro", "train"], project)
    metrics = json.loads((project / "reports" / "training" / "metrics.json").read_text())
    logged = pd.read_csv(project / "reports" / "training" / "history.csv")
    assert list(logged["epoch"]) == list(range(1, len(logged) + 1))
    assert metrics["epochs_run"] == len(logged) <= epochs
    assert "Data and pipelines are up to date" in run(["dvc", "status", "train"], project).stdout


def test_served_answers_reviewed_and_imported_retrain_a_new_version_through_the_gate(
    first_run, tmp_path
):
    """The loop after deployment: answers logged with their faces, monitored, exported,
    relabelled by a reviewer, imported (DVC sees ingest's data change), and the retrain
    registers a new version that the gate decides on, with its production-slice accuracy."""
    import cv2
    import numpy as np

    from ferops.data.synthetic import generate_faces
    from ferops.kernel.emotions import EMOTIONS

    project, _ = first_run
    labels = np.repeat(np.arange(7), 8)
    faces = generate_faces(labels, rng=np.random.default_rng(2026))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, face in enumerate(faces):
        cv2.imwrite(str(photos / f"{i:03d}.png"), face)
    env = {  # as `make serve` with faces kept: the operator asked for them
        "FEROPS_PREDICTION_LOG": str(project / "logs" / "predictions"),
        "FEROPS_PREDICTION_LOG_FACES": "1",
    }
    champion = ["--model", "models:/fer-attention-cnn@champion"]  # else photos get the shipped one
    run(["ferops", "predict", "--whole", "--log", *champion, str(photos)], project, env=env)

    set_params(project, **{"monitor.min_answers": 20})  # read by no stage: DVC stays put
    judged = json.loads(run(["ferops", "monitor", "--json"], project, env=env).stdout)
    assert judged["answers"] == len(faces) and judged["verdict"] in ("ok", "drift")
    assert 0.0 <= judged["estimated_accuracy"] <= 1.0

    review = tmp_path / "review"
    run(["ferops", "feedback", "export", str(review)], project, env=env)
    manifest = pd.read_csv(review / "manifest.csv", dtype=str, keep_default_na=False)
    truth = {face.tobytes(): EMOTIONS[label] for face, label in zip(faces, labels, strict=True)}
    for index, row in manifest.iterrows():  # the reviewer: the true emotion of each face
        face = cv2.imread(str(review / row["predicted"] / row["file"]), cv2.IMREAD_GRAYSCALE)
        manifest.loc[index, "label"] = truth[face.tobytes()]
    manifest.to_csv(review / "manifest.csv", index=False)
    run(["ferops", "feedback", "import", str(review)], project, env=env)
    assert list((project / "data" / "feedback").glob("batch-*.dvc"))
    assert "ingest" in run(["dvc", "status"], project).stdout

    from ferops.ops.retrain import retrain_flow

    before = json.loads((project / "reports" / "promotion.json").read_text())["version"]
    result = retrain_flow(root=str(project))
    assert result["retrained"] and "ingest" in result["changed"]
    assert result["version"] == before + 1 and result["alias"] in ("champion", "challenger")
    provenance = pd.concat(
        pd.read_csv(p) for p in (project / "data" / "feedback").glob("batch-*/provenance.csv")
    )
    held_out = int((provenance["split"] == "production").sum())
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics.get("production_faces", 0) == held_out
    counts = json.loads((project / "reports" / "ingest.json").read_text())["counts"]
    assert counts["production"]["total"] == held_out
    assert counts["train"]["total"] == 84 + len(provenance) - held_out  # TINY: 12 per class
