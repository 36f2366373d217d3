"""Registration through the real MLflow registry (SQLite): a weaker model is registered but
refused, and a failed run moves no alias."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from tests.helpers import register_in, trained_model, trained_project


@pytest.fixture(scope="module")
def learnable_faceset():
    """Clean frontal synthetic faces (difficulty 0): a small net learns them in a few epochs on
    every CPU's numeric path (0.995 test accuracy after 8 epochs with oneDNN on and off, AMD
    AVX512-BF16; 0.99 after 6, 0.97 after 5 on an AMD EPYC with AVX2 only), where the default
    nuisances left it near chance on one Intel AMX CPU (0.19)."""
    from ferops.data.sources import synthetic_faceset
    from ferops.kernel.config import DataConfig, SyntheticConfig

    sizes = SyntheticConfig(
        train_per_class=150, val_per_class=30, test_per_class=30, difficulty=0.0
    )
    return synthetic_faceset(DataConfig(synthetic=sizes), seed=5)


def test_a_weaker_model_is_registered_but_refused_and_a_failure_moves_nothing(
    params, learnable_faceset, tmp_path, monkeypatch
):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = dataclasses.replace(
        params, register=dataclasses.replace(params.register, model_name="fer-test")
    )
    layout = trained_project(tmp_path, learnable_faceset, epochs=6)
    # Another experiment active in this process (as after another project's stage, through the
    # Python API): registration still reopens the training run where it lives.
    mlflow.set_experiment("another-project")
    first = register_in(tmp_path, params, learnable_faceset)
    assert first["alias"] == "champion" and first["version"] == 1

    trained_model(learnable_faceset, layout.model, epochs=0)  # untrained: weaker
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
    # What the registry and the model's page show: descriptions, the model's own figures.
    second_version = client.get_model_version("fer-test", "2")
    assert "Gate: kept as challenger: not better" in second_version.description
    assert f"accuracy {second['candidate_accuracy']:.4f}" in second_version.description
    assert "ferops pipeline" in client.get_registered_model("fer-test").description
    logged = client.get_logged_model(second_version.source.removeprefix("models:/"))
    shown = {m.key: m.value for m in logged.metrics}
    assert shown["test_accuracy"] == pytest.approx(second["candidate_accuracy"])
    assert set(shown) <= {"test_accuracy", "test_macro_f1", "test_expected_calibration_error"}
    tags = client.get_model_version("fer-test", "2").tags  # what the version list shows
    assert set(tags) == {"trained_on", "test_accuracy", "gate", "champion_version", "sha256"}
    assert tags["trained_on"] == "synthetic" and "SYNTHETIC" in second_version.description

    # A broken model file: registration fails, aliases and the report stay as they were.
    report = layout.promotion.read_text()
    layout.model.write_bytes(b"not a model")
    with pytest.raises(Exception, match="model"):
        register_in(tmp_path, params, learnable_faceset)
    assert client.get_model_version_by_alias("fer-test", "champion").version == 1
    assert client.get_model_version_by_alias("fer-test", "challenger").version == 2
    assert layout.promotion.read_text() == report


def test_a_model_file_changed_after_registration_is_refused_everywhere_it_is_loaded(
    params, learnable_faceset, tmp_path, monkeypatch
):
    """The version records each file's sha256; the gate, predict and the pyfunc's own load
    refuse a changed file by name. The pyfunc is code, not a pickle: it loads with MLflow's
    pickle deserialisation switched off."""
    import mlflow

    from ferops.inference.registered import registered_files
    from ferops.kernel.integrity import ModelFileChanged, sha256_file

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(uri)
    params = dataclasses.replace(
        params, register=dataclasses.replace(params.register, model_name="fer-hash")
    )
    layout = trained_project(tmp_path, learnable_faceset, epochs=1)
    assert register_in(tmp_path, params, learnable_faceset)["alias"] == "champion"

    tags = mlflow.MlflowClient().get_model_version("fer-hash", "1").tags
    recorded = dict(pair.split("=") for pair in tags["sha256"].split())  # one tag, every file
    assert recorded["model.keras"] == sha256_file(layout.model)
    assert set(recorded) == {"model.keras", "model.onnx", "preprocessing.json"}
    stored = list((tmp_path / "mlartifacts").glob("models/*/artifacts/artifacts/model.keras"))
    assert len(stored) == 1 and not list(stored[0].parents[1].glob("*.pkl"))
    served = mlflow.pyfunc.load_model("models:/fer-hash@champion")  # no pickle allowed
    faces = learnable_faceset["test"].x[:3]
    request = pd.DataFrame({"pixels": [" ".join(map(str, face.ravel())) for face in faces]})
    assert len(served.predict(request)) == 3

    original = stored[0].read_bytes()
    stored[0].write_bytes(original + b"\0")  # one byte more: a different file
    with pytest.raises(ModelFileChanged, match=r"model\.keras has sha256"):
        registered_files("models:/fer-hash@champion", uri)  # what predict and stream use
    with pytest.raises(Exception, match=r"model\.keras has sha256"):
        mlflow.pyfunc.load_model("models:/fer-hash@champion")
    with pytest.raises(ModelFileChanged, match=r"model\.keras"):  # the gate loads the champion
        register_in(tmp_path, params, learnable_faceset)
    assert mlflow.MlflowClient().get_model_version_by_alias("fer-hash", "champion").version == 1

    stored[0].write_bytes(original)
    assert registered_files("models:/fer-hash@champion", uri).keras is not None
