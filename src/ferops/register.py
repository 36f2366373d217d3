"""Register the trained model in the MLflow model registry and decide whether it is champion.

The gate: candidate and champion predict the same current test faces; McNemar's exact test on
the images where exactly one of them is right says whether the difference is more than luck.
The candidate becomes `champion` only if it is better by at least `register.min_gain` with
p < `register.alpha` (or if there is no champion yet); otherwise it becomes `challenger`.
Aliases move only after everything else succeeded; reports/promotion.json says why.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import ferops
from ferops.artifacts import write_json
from ferops.config import Params

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_accuracy: float
    champion_accuracy: float | None
    p_value: float | None
    candidate_only_right: int  # McNemar's b: images only the candidate gets right
    champion_only_right: int  # McNemar's c


def mcnemar_p_value(candidate_only: int, champion_only: int) -> float:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    discordant = candidate_only + champion_only
    if discordant == 0:
        return 1.0
    return float(binomtest(candidate_only, discordant, 0.5).pvalue)


def gate(
    candidate_correct: np.ndarray,
    champion_correct: np.ndarray | None,
    *,
    min_gain: float,
    alpha: float,
) -> GateDecision:
    """Decide promotion from per-image correctness of both models on the same test faces."""
    candidate_accuracy = float(candidate_correct.mean())
    if champion_correct is None:
        return GateDecision(True, "no champion yet", candidate_accuracy, None, None, 0, 0)
    b = int(np.sum(candidate_correct & ~champion_correct))
    c = int(np.sum(~candidate_correct & champion_correct))
    champion_accuracy = float(champion_correct.mean())
    p_value = mcnemar_p_value(b, c)
    gain = candidate_accuracy - champion_accuracy
    if b <= c or gain < min_gain:
        reason = (
            f"not better by at least {min_gain}: accuracy {candidate_accuracy:.4f} vs "
            f"champion {champion_accuracy:.4f} ({gain:+.4f})"
        )
        return GateDecision(False, reason, candidate_accuracy, champion_accuracy, p_value, b, c)
    if p_value >= alpha:
        reason = f"better by {gain:+.4f} but not significantly (McNemar p={p_value:.3g} >= {alpha})"
        return GateDecision(False, reason, candidate_accuracy, champion_accuracy, p_value, b, c)
    reason = f"better by {gain:+.4f}, McNemar p={p_value:.3g} < {alpha}"
    return GateDecision(True, reason, candidate_accuracy, champion_accuracy, p_value, b, c)


def input_example(face: np.ndarray) -> Any:
    """A one-row request with a real PNG, as a caller would send it."""
    import pandas as pd
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "pixels": [""]})


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from ferops.serving import PROBABILITY_COLUMNS

    inputs = Schema(
        [ColSpec("string", "image", required=False), ColSpec("string", "pixels", required=False)]
    )
    outputs = Schema(
        [
            ColSpec("string", "emotion"),
            ColSpec("double", "confidence"),
            *[ColSpec("double", name) for name in PROBABILITY_COLUMNS],
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def pinned_requirements() -> list[str]:
    """The serving dependencies at the versions installed now (saves MLflow's slow inference)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in (
        "tensorflow-cpu",
        "keras",
        "mlflow",
        "numpy",
        "pandas",
        "pillow",
        "opencv-python-headless",
        "onnxruntime",
        "scikit-learn",
        "pyyaml",
    ):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def git_commit(root: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def register(
    params: Params,
    *,
    processed: Path,
    model_path: Path,
    run_file: Path,
    evaluation_dir: Path,
    metrics_path: Path,
    promotion_path: Path,
    root: Path,
) -> dict[str, Any]:
    """Log the pyfunc, register a version, gate it against the champion, move one alias."""
    import mlflow
    from mlflow import MlflowClient

    from ferops.data.faceset import load_faceset
    from ferops.models.registry import load_model
    from ferops.tracking import tracking_uri

    config = params.register
    test = load_faceset(processed)["test"]
    candidate = load_model(model_path)
    candidate_correct = candidate.predict(test.x, verbose=0).argmax(axis=1) == test.y
    run = json.loads(run_file.read_text())
    mlflow.set_tracking_uri(tracking_uri(root))
    client = MlflowClient()

    champion = _alias(client, config.model_name, CHAMPION)
    champion_correct = None
    if champion is not None:
        # Re-evaluate the champion on today's test set, whatever data it was trained on.
        served = mlflow.pyfunc.load_model(f"models:/{config.model_name}@{CHAMPION}")
        champion_predict = served.unwrap_python_model().classifier.predict_fn  # processed faces
        champion_correct = champion_predict(test.x).argmax(axis=1) == test.y
    decision = gate(
        candidate_correct, champion_correct, min_gain=config.min_gain, alpha=config.alpha
    )

    with mlflow.start_run(run_id=run["run_id"]):
        preprocessing = {
            "contrast": params.preprocess.contrast,
            "clahe_clip": params.preprocess.clahe_clip,
        }
        info = log_pyfunc(candidate, model_path, preprocessing, test.x)
        if evaluation_dir.is_dir():
            mlflow.log_artifacts(str(evaluation_dir), "evaluation")
    version = mlflow.register_model(info.model_uri, config.model_name)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    tags = {
        "data_sha1": run.get("data_sha1", ""),
        "git_commit": git_commit(root),
        "train_run_id": run["run_id"],
        "model": json.dumps(run.get("model", {})),
        "test_accuracy": f"{decision.candidate_accuracy:.4f}",
        "test_macro_f1": f"{metrics.get('macro_f1', float('nan')):.4f}",
        "gate": "promoted" if decision.promote else "refused",
        "gate_reason": decision.reason,
        "champion_version": champion.version if champion else "none",
        "champion_accuracy": "none"
        if decision.champion_accuracy is None
        else f"{decision.champion_accuracy:.4f}",
        "mcnemar_p_value": "none" if decision.p_value is None else f"{decision.p_value:.4g}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(config.model_name, version.version, key, value)

    alias = CHAMPION if decision.promote else CHALLENGER
    client.set_registered_model_alias(config.model_name, alias, version.version)
    outcome = {
        "model_name": config.model_name,
        "version": int(version.version),
        "alias": alias,
        "previous_champion": champion.version if champion else None,
        **asdict(decision),
        "model_uri": f"models:/{config.model_name}@{alias}",
    }
    write_json(promotion_path, outcome)
    log.info(
        "registered %s version %s as %s: %s",
        config.model_name,
        version.version,
        alias,
        decision.reason,
    )
    return outcome


def log_pyfunc(
    model: Any, model_path: Path, preprocessing: dict[str, Any], faces: np.ndarray
) -> Any:
    """Log the served pyfunc to the active run: the Keras file, its ONNX export (the fast path
    the pyfunc prefers; refused, failing the caller, unless it matches Keras within 1e-4 on
    `faces`), the contrast settings, a signature, a real input example and the code."""
    import mlflow

    from ferops.export import export_model
    from ferops.serving import EmotionClassifier

    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "preprocessing.json"
        settings.write_text(json.dumps(preprocessing))
        onnx_path = Path(tmp) / "model.onnx"
        export_model(model, "onnx", onnx_path, faces[:64])
        return mlflow.pyfunc.log_model(
            name="emotion_classifier",
            python_model=EmotionClassifier(),
            artifacts={
                "keras_model": str(model_path),
                "onnx_model": str(onnx_path),
                "preprocessing": str(settings),
            },
            signature=signature(),
            input_example=input_example(faces[0]),
            pip_requirements=pinned_requirements(),
            code_paths=[str(Path(ferops.__file__).parent)],  # the model carries its code
        )


def _alias(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
