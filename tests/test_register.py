"""The promotion gate, and registration through the real MLflow registry (SQLite)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ferops.registry.gate import gate, mcnemar_p_value


def correctness(n: int, right: int) -> np.ndarray:
    return np.arange(n) < right


def test_the_first_version_is_champion():
    decision = gate(correctness(100, 60), None, min_gain=0.0, alpha=0.05)
    assert decision.promote and decision.reason == "no champion yet"


def test_a_clearly_better_candidate_is_promoted_with_its_p_value():
    champion = correctness(400, 240)  # 0.60
    candidate = correctness(400, 300)  # 0.75, right wherever the champion is
    decision = gate(candidate, champion, min_gain=0.01, alpha=0.05)
    assert decision.promote
    assert decision.candidate_only_right == 60 and decision.champion_only_right == 0
    assert decision.p_value < 1e-10


@pytest.mark.parametrize(
    ("candidate_right", "why"),
    [(240, "not better"), (200, "not better"), (245, "not significantly")],
)
def test_a_worse_equal_or_barely_better_candidate_is_refused(candidate_right, why):
    champion = correctness(400, 240)
    decision = gate(correctness(400, candidate_right), champion, min_gain=0.0, alpha=0.05)
    assert not decision.promote and why in decision.reason


def test_the_minimum_gain_is_required_even_when_significant():
    decision = gate(correctness(400, 300), correctness(400, 240), min_gain=0.2, alpha=0.05)
    assert not decision.promote and "at least 0.2" in decision.reason


def test_mcnemar_matches_the_exact_binomial():
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(10, 0) == pytest.approx(2 * 0.5**10)


def trained_model(faceset, path: Path, epochs: int) -> None:
    from ferops.kernel.config import TrainConfig
    from ferops.kernel.model_spec import ModelSpec
    from ferops.models.builders import build_model
    from ferops.training.fit import fit, seed_everything

    seed_everything(0)
    model = build_model(ModelSpec(attention="spatial", width=8, depth=3, augment=0.0))
    if epochs:
        fit(
            model,
            faceset,
            TrainConfig(batch_size=32, learning_rate=0.004),
            epochs=epochs,
            callbacks=[],
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


@pytest.fixture(scope="module")
def learnable_faceset():
    """Clean frontal synthetic faces (difficulty 0): a small net learns them in a few epochs on
    every CPU's numeric path (0.995 test accuracy after 8 epochs with oneDNN on and off, AMD
    AVX512-BF16), where the default nuisances left it near chance on one Intel AMX CPU (0.19)."""
    from ferops.data.sources import synthetic_faceset
    from ferops.kernel.config import DataConfig, SyntheticConfig

    sizes = SyntheticConfig(
        train_per_class=150, val_per_class=30, test_per_class=30, difficulty=0.0
    )
    return synthetic_faceset(DataConfig(synthetic=sizes), seed=5)


def register_in(root: Path, params, faceset):
    import mlflow

    from ferops.pipeline.register import register

    experiment = mlflow.set_experiment("register-test")
    run = mlflow.MlflowClient().create_run(experiment.experiment_id)
    (root / "training").mkdir(exist_ok=True)
    (root / "training" / "run.json").write_text(json.dumps({"run_id": run.info.run_id}))
    return register(
        params,
        processed=root / "processed",
        model_path=root / "model.keras",
        run_file=root / "training" / "run.json",
        evaluation_dir=root / "evaluation",
        metrics_path=root / "metrics.json",
        promotion_path=root / "promotion.json",
        root=root,
    )


@pytest.mark.slow
def test_a_weaker_model_is_registered_but_refused_and_a_failure_moves_nothing(
    params, learnable_faceset, tmp_path, monkeypatch
):
    import mlflow

    from ferops.data.faceset import save_faceset

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = dataclasses.replace(
        params, register=dataclasses.replace(params.register, model_name="fer-test")
    )
    save_faceset(learnable_faceset, tmp_path / "processed")

    trained_model(learnable_faceset, tmp_path / "model.keras", epochs=8)
    first = register_in(tmp_path, params, learnable_faceset)
    assert first["alias"] == "champion" and first["version"] == 1

    trained_model(learnable_faceset, tmp_path / "model.keras", epochs=0)  # untrained: weaker
    second = register_in(tmp_path, params, learnable_faceset)
    assert second["alias"] == "challenger" and second["version"] == 2
    # Relative, with a wide margin: trained beats untrained by far (chance is 0.14).
    assert first["candidate_accuracy"] > second["candidate_accuracy"] + 0.3
    assert second["champion_accuracy"] == pytest.approx(first["candidate_accuracy"])
    assert second["p_value"] < 0.05 and "not better" in second["reason"]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("fer-test", "champion").version == 1
    tags = client.get_model_version("fer-test", "2").tags
    assert tags["gate"] == "refused" and tags["champion_version"] == "1"

    # A broken model file: registration fails, aliases and the report stay as they were.
    report = (tmp_path / "promotion.json").read_text()
    (tmp_path / "model.keras").write_bytes(b"not a model")
    with pytest.raises(Exception, match="model"):
        register_in(tmp_path, params, learnable_faceset)
    assert client.get_model_version_by_alias("fer-test", "champion").version == 1
    assert client.get_model_version_by_alias("fer-test", "challenger").version == 2
    assert (tmp_path / "promotion.json").read_text() == report
