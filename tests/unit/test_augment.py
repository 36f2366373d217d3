"""OpenCV batch augmentation and mixup: deterministic per seed, epoch and batch."""

from __future__ import annotations

import keras
import numpy as np

from ferops.training.augment import AugmentedBatches, mixup


def batches(faces: np.ndarray, labels: np.ndarray, **options) -> AugmentedBatches:
    targets = keras.utils.to_categorical(labels, 7)
    return AugmentedBatches(faces, targets, batch_size=8, seed=3, **options)


def test_a_batch_depends_only_on_seed_epoch_and_index(tiny_faceset):
    train = tiny_faceset["train"]
    first, again = batches(train.x, train.y, strength=1.0), batches(train.x, train.y, strength=1.0)
    np.testing.assert_array_equal(first[1][0], again[1][0])
    assert not np.array_equal(first[1][0], train.x[first.order[8:16]])  # augmented
    before = first[1][0]
    first.on_epoch_end()
    assert not np.array_equal(first[1][0], before)  # a new epoch, new order and new draws


def test_no_strength_and_no_mixup_give_the_faces_as_they_are(tiny_faceset):
    train = tiny_faceset["train"]
    plain = batches(train.x, train.y, strength=0.0)
    faces, targets = plain[0]
    np.testing.assert_array_equal(faces, train.x[plain.order[:8]])
    np.testing.assert_array_equal(targets.argmax(1), train.y[plain.order[:8]])


def test_mixup_blends_faces_and_labels_by_the_same_weight():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    labels = np.arange(64) % 7
    targets = keras.utils.to_categorical(labels, 7)
    mixed, soft, weights = mixup(faces, targets, np.ones(64), rng, alpha=0.4)
    np.testing.assert_allclose(soft.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(weights, 1)
    own = soft[np.arange(64), labels]
    assert (own >= 0.5 - 1e-6).all() and (own < 1).any()  # each face keeps the larger share
    for k in np.flatnonzero(own < 0.999):  # the face is λ of itself plus 1-λ of a partner
        partner_share = (mixed[k] - own[k] * faces[k]) / (1 - own[k])
        assert any(np.allclose(partner_share, face, atol=0.05) for face in faces)


def test_mixup_alone_feeds_blended_batches(tiny_faceset):
    train = tiny_faceset["train"]
    faces, targets = batches(train.x, train.y, strength=0.0, mixup=0.4)[0]
    assert faces.dtype == np.float32 and (targets.max(axis=1) < 1).any()
