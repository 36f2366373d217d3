"""Model variants: they build, save and load, and their training-only layers stay so."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from ferops.kernel.model_spec import ATTENTION_KINDS, MODEL_VARIANTS, ModelSpec
from ferops.models.attention import ATTENTION_BLOCKS, CBAM, ChannelAttention, SpatialAttention
from ferops.models.builders import MODEL_BUILDERS, build_model
from tests.helpers import noise_faces

FACES = noise_faces(2)


def test_the_names_the_config_accepts_are_the_ones_the_registry_builds():
    assert set(MODEL_BUILDERS) == set(MODEL_VARIANTS)
    assert set(ATTENTION_BLOCKS) == set(ATTENTION_KINDS)


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_every_variant_builds_at_tiny_width_and_outputs_probabilities(variant, attention):
    model = build_model(ModelSpec(variant=variant, attention=attention, width=4, depth=2))
    probabilities = np.asarray(model(FACES, training=False))
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_paper_cnn_is_the_reference_architecture():
    model = build_model(ModelSpec(variant="paper_cnn", layer_augment=0))
    assert model.count_params() == 1_375_175
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (44, 44, 64) and shapes["conv2"] == (40, 40, 64)
    assert shapes["pool1"] == (20, 20, 64) and shapes["conv3"] == (18, 18, 128)
    assert shapes["conv4"] == (16, 16, 128) and shapes["pool2"] == (8, 8, 128)
    assert shapes["flatten"] == (8192,) and shapes["dense"] == (128,)
    assert shapes["emotion"] == (7,)


@pytest.mark.parametrize("layer_class", [SpatialAttention, ChannelAttention, CBAM])
def test_each_attention_layer_survives_a_keras_save_and_load(layer_class, tmp_path):
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, layer_class(name="block")(inputs))
    features = np.random.default_rng(1).normal(size=(3, 8, 8, 16)).astype("float32")
    model.save(tmp_path / "block.keras")
    loaded = keras.models.load_model(tmp_path / "block.keras")
    assert isinstance(loaded.get_layer("block"), layer_class)
    np.testing.assert_allclose(loaded(features), model(features), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer_class", [SpatialAttention, CBAM])
def test_training_computes_the_same_attention_map_and_gradients_another_way(layer_class):
    """Training convolves the pooled maps as one depthwise convolution (it is faster), not
    with the Conv2D that inference and exports use: the same map, and the same gradients."""
    import tensorflow as tf

    layer = layer_class()
    features = tf.constant(np.random.default_rng(2).normal(size=(3, 12, 12, 16)), "float32")
    layer.build(features.shape)
    answers, gradients = [], []
    for training in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(features)
            out = layer(features, training=training)
            loss = tf.reduce_sum(out * tf.cos(out))
        answers.append(out.numpy())
        gradients.append(tape.gradient(loss, [features, *layer.trainable_weights]))
    np.testing.assert_allclose(answers[1], answers[0], rtol=1e-5, atol=1e-5)
    for fast, plain in zip(gradients[1], gradients[0], strict=True):
        np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-4, atol=1e-4)


def test_a_saved_attention_cnn_loads_back_and_predicts_the_same(tmp_path):
    model = build_model(ModelSpec(attention="cbam", width=4, depth=2))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        loaded.predict(FACES, verbose=0), model.predict(FACES, verbose=0), rtol=1e-6, atol=1e-6
    )


def test_augmentation_acts_in_training_only():
    model = build_model(ModelSpec(attention="none", width=4, depth=1, layer_augment=1.0))
    augment = model.get_layer("augment")
    x = (FACES[..., None] / 255.0).astype("float32")
    np.testing.assert_array_equal(augment(x, training=False), x)
    assert not np.allclose(augment(x, training=True), x)
    np.testing.assert_array_equal(model(FACES, training=False), model(FACES, training=False))


def test_an_unknown_variant_or_attention_is_named():
    with pytest.raises(ValueError, match="unknown model variant 'resnet'"):
        build_model(ModelSpec(variant="resnet"))
    with pytest.raises(ValueError, match="unknown attention 'se'"):
        build_model(ModelSpec(attention="se"))


def test_face_jitter_moves_flips_and_erases_in_training_only_and_survives_save(tmp_path):
    from ferops.models.jitter import MAX_SHIFT, FaceJitter

    faces = np.zeros((64, 48, 48, 1), "float32")
    faces[:, 20:28, 20:28] = 1.0  # a bright square in the middle of a dark face
    jitter = FaceJitter(1.0, seed=3)
    np.testing.assert_array_equal(jitter(faces, training=False), faces)
    moved = np.asarray(jitter(faces, training=True))
    assert moved.shape == faces.shape and moved.min() >= 0.0 and moved.max() <= 1.0
    # The square's centre (its brightest pixels; brightness, contrast and erasing vary) stays
    # within MAX_SHIFT pixels of where it was, and it moves.
    bright = [face[..., 0] > (face.max() + np.median(face)) / 2 for face in moved]
    centres = [np.argwhere(b).mean(axis=0) for b in bright if 40 <= b.sum() <= 64]
    assert len(centres) > 16
    offsets = np.abs(np.array(centres) - 23.5)
    assert offsets.max() <= MAX_SHIFT + 0.5 and offsets.max() >= 1
    model = build_model(ModelSpec(variant="vgg_attention_cnn", width=4, depth=2, jitter=1.0))
    model.save(tmp_path / "jitter.keras")
    loaded = keras.models.load_model(tmp_path / "jitter.keras")
    assert isinstance(loaded.get_layer("jitter"), FaceJitter)
    np.testing.assert_allclose(loaded(FACES), model(FACES), rtol=1e-6, atol=1e-6)


def test_a_random_crop_trains_on_a_window_of_each_face_and_infers_on_the_centre_one(tmp_path):
    """Each training face is a crop x crop window (its own, somewhere in the face) scaled back
    to 48x48 by nearest neighbour; at inference every face is its centre window, in Keras and
    in the saved model alike."""
    from ferops.models.jitter import FaceJitter, training_crop, window_index

    faces = np.random.default_rng(1).random((16, 48, 48, 1)).astype("float32")
    jitter = FaceJitter(0.0, seed=5, crop=40)  # crop only: no shift, flip or erasing
    index = window_index(40, 48)
    places = [(top, left) for top in range(9) for left in range(9)]
    windows = {(top, left): faces[:, top + index][:, :, left + index] for top, left in places}
    cropped = np.asarray(jitter(faces, training=True))
    found_at = [
        [where for where, window in windows.items() if np.array_equal(cropped[k], window[k])]
        for k in range(len(faces))
    ]
    assert all(len(found) == 1 for found in found_at)  # every face is one window of itself
    assert len({found[0] for found in found_at}) > 4  # at places of its own
    np.testing.assert_array_equal(jitter(faces, training=False), windows[(4, 4)])

    spec = ModelSpec(variant="res_attention_cnn", width=4, depth=2, crop=40, jitter=1.0)
    model = build_model(spec)
    assert model.name.endswith("_crop40") and training_crop(model) == 40
    model.save(tmp_path / "crop.keras")
    loaded = keras.models.load_model(tmp_path / "crop.keras")
    assert training_crop(loaded) == 40
    np.testing.assert_allclose(loaded(FACES), model(FACES), rtol=1e-6, atol=1e-6)
    assert training_crop(build_model(ModelSpec(width=4, depth=2, jitter=1.0))) is None


@pytest.mark.parametrize(
    ("placement", "stages"), [("all", [0, 1, 2, 3]), ("late", [2, 3]), ("last", [3])]
)
@pytest.mark.parametrize("variant", ["attention_cnn", "res_attention_cnn", "vgg_attention_cnn"])
def test_attention_blocks_close_the_stages_the_placement_names(variant, placement, stages):
    spec = ModelSpec(
        variant=variant, attention="cbam", width=4, depth=4, blocks=1, attention_stages=placement
    )
    model = build_model(spec)
    assert [layer.name for layer in model.layers if layer.name.endswith("_attention")] == [
        f"s{stage}_attention" for stage in stages
    ]
    none = build_model(dataclasses.replace(spec, attention="none"))
    assert not [layer for layer in none.layers if layer.name.endswith("_attention")]


@pytest.mark.parametrize("attention", ["spatial", "cbam"])
def test_a_model_saved_in_mixed_precision_loads_back_whole(attention, tmp_path):
    """The train stage reloads its best epoch, saved under mixed_bfloat16: the attention
    blocks' inner layers must come back in that policy (a spatial one did not, and a FER2013
    run failed after its last epoch)."""
    from ferops.models.builders import build_model_under

    spec = ModelSpec(variant="res_attention_cnn", attention=attention, width=8, depth=2)
    model, _ = build_model_under("mixed_bfloat16", spec)
    model.save(tmp_path / "bf16.keras")
    loaded = keras.models.load_model(tmp_path / "bf16.keras")
    np.testing.assert_array_equal(loaded(FACES), model(FACES))


def test_the_full_resolution_variants_keep_48x48_in_their_first_stage():
    vgg = build_model(ModelSpec(variant="vgg_attention_cnn", width=8, depth=3, blocks=2))
    assert tuple(vgg.get_layer("s0_conv1").output.shape[1:3]) == (48, 48)
    assert tuple(vgg.get_layer("s2_pool").output.shape[1:]) == (6, 6, 32)
    pooled = build_model(ModelSpec(variant="res_attention_cnn", width=8, depth=2))
    full = build_model(ModelSpec(variant="res_attention_cnn", width=8, depth=2, stem_pool=False))
    assert tuple(pooled.get_layer("s0_b0_out").output.shape[1:3]) == (24, 24)
    assert tuple(full.get_layer("s0_b0_out").output.shape[1:3]) == (48, 48)
    assert pooled.count_params() == full.count_params()  # same weights, four times the work


def test_sgd_steps_its_learning_rate_down_at_half_and_three_quarters():
    from ferops.kernel.config import TrainConfig
    from ferops.training.fit import make_optimizer

    sgd = make_optimizer(TrainConfig(optimizer="sgd", learning_rate=0.1), steps=100)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    rates = [float(sgd._learning_rate(step)) for step in (0, 49, 51, 74, 76, 99)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    adamw = make_optimizer(TrainConfig(optimizer="adamw", learning_rate=0.1), steps=100)
    assert isinstance(adamw, keras.optimizers.AdamW)
