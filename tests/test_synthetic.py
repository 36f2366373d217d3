import numpy as np
import pytest

from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.kernel.emotions import NUM_CLASSES


def _faces(seed: int, per_class: int = 5):
    rng = np.random.default_rng(seed)
    labels = balanced_labels(per_class, rng=rng)
    return generate_faces(labels, rng=rng), labels


def test_same_seed_same_faces_other_seed_other_faces():
    a, la = _faces(1)
    b, lb = _faces(1)
    c, _ = _faces(2)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_faces_are_uint8_48x48_balanced_and_varied():
    faces, labels = _faces(0, per_class=10)
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


@pytest.mark.slow
def test_a_linear_model_on_pixels_is_clearly_worse_than_a_small_cnn():
    """The data set is neither trivial (pixels alone do not solve it) nor noise (a CNN does)."""
    import keras
    from keras import layers
    from sklearn.linear_model import LogisticRegression

    train_x, train_y = _faces(10, per_class=300)
    test_x, test_y = _faces(11, per_class=60)

    linear = LogisticRegression(max_iter=200, C=0.01)
    linear.fit(train_x.reshape(len(train_x), -1) / 255.0, train_y)
    linear_accuracy = linear.score(test_x.reshape(len(test_x), -1) / 255.0, test_y)

    keras.utils.set_random_seed(0)
    blocks = []
    for width in (32, 64, 128):
        blocks += [
            layers.Conv2D(width, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(),
        ]
    cnn = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            layers.Rescaling(1 / 255.0),
            *blocks,
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    epochs, steps = 22, int(np.ceil(len(train_x) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * steps)
    cnn.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    cnn.fit(train_x[..., None], train_y, epochs=epochs, batch_size=64, verbose=0)
    cnn_accuracy = cnn.evaluate(test_x[..., None], test_y, verbose=0)[1]

    print(f"logistic regression {linear_accuracy:.3f}, small CNN {cnn_accuracy:.3f}")
    chance = 1 / NUM_CLASSES
    assert chance + 0.03 < linear_accuracy < 0.45
    assert cnn_accuracy > 0.80
    assert cnn_accuracy > linear_accuracy + 0.35
