"""Reading an image folder: any size and colour, synonym labels, carved val, named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferops.data.image_folder import read_image_folder
from ferops.kernel.errors import DataError
from tests.helpers import make_folder, noise_faces


def test_any_size_and_colour_becomes_48x48_grey_with_synonym_labels(tmp_path):
    faceset, report = read_image_folder(make_folder(tmp_path / "faces"))
    for split in ("train", "val", "test"):
        assert faceset[split].x.shape == (14, 48, 48) and faceset[split].x.dtype == np.uint8
        assert np.bincount(faceset[split].y).tolist() == [2] * 7
    assert faceset["train"].sources[0].startswith("train/Anger/")
    assert not report.skipped and not report.val_carved_from_train


def test_without_val_a_stratified_seeded_val_is_carved_from_train(tmp_path):
    root = make_folder(tmp_path / "faces", splits=("train", "test"), per_class=10)
    faceset, report = read_image_folder(root, val_fraction=0.2, seed=3)
    again, _ = read_image_folder(root, val_fraction=0.2, seed=3)
    assert report.val_carved_from_train
    assert np.bincount(faceset["val"].y).tolist() == [2] * 7
    assert len(faceset["train"]) == 56
    assert faceset["val"].sources == again["val"].sources
    assert not set(faceset["val"].sources) & set(faceset["train"].sources)


def test_an_unknown_class_folder_is_named(tmp_path):
    root = make_folder(tmp_path / "faces", per_class=1)
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match=r"train/contempt: unknown emotion 'contempt'"):
        read_image_folder(root)


def test_a_truncated_image_is_named_or_skipped_and_listed(tmp_path):
    root = make_folder(tmp_path / "faces", per_class=2)
    bad = root / "val" / "FEAR" / "broken.jpg"  # a 15th val image
    Image.fromarray(noise_faces(1)[0]).resize((200, 200)).save(bad)
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError, match=r"val/FEAR/broken\.jpg: unreadable or truncated"):
        read_image_folder(root)
    faceset, report = read_image_folder(root, on_bad_image="skip")
    assert len(faceset["val"]) == 14
    assert [Path(s["file"]).name for s in report.skipped] == ["broken.jpg"]


def test_a_non_image_file_is_ignored_but_listed(tmp_path):
    root = make_folder(tmp_path / "faces", per_class=1)
    (root / "train" / "neutral" / "notes.txt").write_text("not a face")
    faceset, report = read_image_folder(root)
    assert len(faceset["train"]) == 7
    assert report.ignored == [
        {"file": str(root / "train/neutral/notes.txt"), "reason": "not an image file"}
    ]


def test_missing_root_missing_split_and_empty_split_are_named(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        read_image_folder(tmp_path / "absent")
    root = make_folder(tmp_path / "a", splits=("train", "val"), per_class=1)
    with pytest.raises(DataError, match="needs train/ and test/"):
        read_image_folder(root)
    root = make_folder(tmp_path / "b", splits=("train", "val"), per_class=1)
    (root / "test" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="split\\(s\\) test hold no images"):
        read_image_folder(root)
