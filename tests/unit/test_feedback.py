"""The review loop: logged faces out by predicted emotion, reviewed faces back in as a
feedback batch with provenance; every kind of junk refused by name, with nothing imported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ferops.data.faceset import PRODUCTION, save_faceset
from ferops.feedback.review import MANIFEST, PROVENANCE, feedback_splits, imported
from ferops.kernel.errors import DataError
from ferops.kernel.layout import Layout
from ferops.ops.feedback import import_review
from ferops.prediction_log.records import Answerer, Answers
from tests.helpers import synthetic_faces


def logged(faces: np.ndarray, keep_faces: bool = True) -> pd.DataFrame:
    """Prediction-log rows for `faces`, one request each, as the server writes them."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(7), len(faces))
    batch = [
        Answers(Answerer("models:/m/1", "abc", "serve"), f[None], p[None], [(48, 48)], 5.0,
                keep_faces)
        for f, p in zip(faces, probabilities, strict=True)
    ]  # fmt: skip
    return pa.table(Answers.columns_of(batch)).to_pandas()


@pytest.fixture
def project(tmp_path, tiny_faceset, params) -> tuple[Layout, object]:
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.interim)
    return layout, params


def exported(layout: Layout, faces: np.ndarray, out: Path) -> pd.DataFrame:
    from ferops.feedback.review import export_for_review

    assert export_for_review(logged(faces), out) == len(faces)
    return pd.read_csv(out / MANIFEST, dtype=str, keep_default_na=False)


def test_a_review_round_trip_imports_moved_and_labelled_faces_with_provenance(project, tmp_path):
    layout, params = project
    faces, _ = synthetic_faces(seed=11, per_class=3)
    manifest = exported(layout, faces, tmp_path / "review")
    first, second = manifest.iloc[0], manifest.iloc[1]
    target = "surprise" if first["predicted"] != "surprise" else "fear"
    shutil.move(tmp_path / "review" / first["predicted"] / first["file"],
                tmp_path / "review" / target / first["file"])  # fmt: skip
    manifest.loc[1, "label"] = "Sadness"  # a synonym, in the label column: wins over the folder
    manifest.to_csv(tmp_path / "review" / MANIFEST, index=False)

    batch = import_review(params, layout, tmp_path / "review", track=False)

    provenance = pd.read_csv(batch / PROVENANCE, dtype=str)
    labels = dict(zip(provenance["file"], provenance["label"], strict=True))
    assert labels[first["file"]] == target and labels[second["file"]] == "sad"
    assert set(provenance["split"]) <= {"train", PRODUCTION}
    assert {"request_id", "model_uri", "predicted", "sha1"} <= set(provenance.columns)
    parts = feedback_splits(layout.feedback)
    assert len(parts["train"]) + len(parts[PRODUCTION]) == len(faces)
    assert parts["train"].sources[0].startswith(f"feedback:{batch.name}:")
    with pytest.raises(DataError, match="imported before"):
        import_review(params, layout, tmp_path / "review", track=False)


def test_no_face_kept_means_nothing_to_export(tmp_path):
    from ferops.feedback.review import export_for_review

    faces, _ = synthetic_faces(seed=12, per_class=1)
    with pytest.raises(DataError, match="FEROPS_PREDICTION_LOG_FACES=1"):
        export_for_review(logged(faces, keep_faces=False), tmp_path / "review")


@pytest.mark.parametrize("junk", ["unknown folder", "not an image", "test copy", "missing file"])
def test_junk_is_refused_by_name_and_nothing_is_imported(project, tmp_path, tiny_faceset, junk):
    layout, params = project
    faces, _ = synthetic_faces(seed=13, per_class=1)
    if junk == "test copy":
        faces[2] = tiny_faceset["test"].x[5]
    review = tmp_path / "review"
    manifest = exported(layout, faces, review)
    name = manifest.iloc[2]["file"]
    where = review / manifest.iloc[2]["predicted"] / name
    expected = {
        "unknown folder": "unknown emotion 'smirk'",
        "not an image": f"{name}: not a readable image",
        "test copy": f"row 4 ({name}): a copy of the test face",
        "missing file": f"row 4 ({name}): the file is in no emotion folder",
    }[junk]
    if junk == "unknown folder":
        (review / "smirk").mkdir()
        shutil.move(where, review / "smirk" / name)
    elif junk == "not an image":
        where.write_text("<html>not a face</html>")
    elif junk == "missing file":
        where.unlink()
    with pytest.raises(DataError, match="nothing imported") as refused:
        import_review(params, layout, review, track=False)
    assert expected in str(refused.value)
    assert imported(layout.feedback).empty
