"""The synthetic face generator: deterministic, balanced, varied."""

from __future__ import annotations

import numpy as np

from ferops.kernel.emotions import NUM_CLASSES
from tests.helpers import synthetic_faces


def test_same_seed_same_faces_other_seed_other_faces():
    a, la = synthetic_faces(1)
    b, lb = synthetic_faces(1)
    c, _ = synthetic_faces(2)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_faces_are_uint8_48x48_balanced_and_varied():
    faces, labels = synthetic_faces(0, per_class=10)
    assert faces.dtype == np.uint8 and faces.shape == (70, 48, 48)
    assert np.bincount(labels).tolist() == [10] * NUM_CLASSES
    assert faces.reshape(70, -1).std(axis=1).min() > 5  # no blank faces
    assert len({f.tobytes() for f in faces}) == 70  # every face distinct


def test_the_synthetic_ingest_is_deterministic_per_split(params):
    from ferops.data.sources import synthetic_faceset

    first = synthetic_faceset(params.data, seed=params.seed)
    again = synthetic_faceset(params.data, seed=params.seed)
    for split in ("train", "val", "test"):
        assert np.array_equal(first[split].x, again[split].x)
    assert first["test"].x.shape == (4 * NUM_CLASSES, 48, 48)
