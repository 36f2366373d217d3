"""The model builders: a variant is a name plus hyper-parameters, so Optuna can search it.

Every model takes uint8 faces of shape (48, 48) and returns seven softmax probabilities;
rescaling and augmentation live inside the model, so callers never preprocess by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from ferops.kernel.emotions import NUM_CLASSES
from ferops.kernel.model_spec import FACE_SIZE, ModelSpec
from ferops.models.attention import attention_block
from ferops.models.jitter import FaceJitter
from ferops.models.precision import dtype_policy

# Batch norm's running statistics: 0.9 settles them within the few dozen steps of a search's
# first rung. With Keras' default 0.99, a FER2013 trial (res_attention_cnn, 3 epochs on 10-17 %
# of train) scored val accuracy 0.170 (one class answered for every face) where 0.9 scored
# 0.257 with the very same training steps. Long runs do as well with it.
BN_MOMENTUM = 0.9


def build_model(spec: ModelSpec, *, seed: int = 0) -> keras.Model:
    """Return the uncompiled model named by `spec.variant`."""
    if spec.variant not in MODEL_BUILDERS:
        raise ValueError(
            f"unknown model variant {spec.variant!r}; expected one of {', '.join(MODEL_BUILDERS)}"
        )
    return MODEL_BUILDERS[spec.variant](spec, seed)


def build_model_under(policy: str, spec: ModelSpec, *, seed: int = 0) -> tuple[keras.Model, str]:
    """The model built under dtype policy `policy` (train.precision; its layers keep it), and
    the policy that resolved to on this machine."""
    with dtype_policy(policy) as resolved:
        return build_model(spec, seed=seed), resolved


def face_input(spec: ModelSpec, seed: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """uint8 (48, 48) in; float (48, 48, 1) in [0, 1] out, augmented only while training."""
    faces = keras.Input(shape=(FACE_SIZE, FACE_SIZE), dtype="uint8", name="face")
    x = layers.Reshape((FACE_SIZE, FACE_SIZE, 1), name="add_channel")(faces)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    if spec.layer_augment > 0:
        x = augmentation(spec.layer_augment, seed)(x)
    if spec.jitter > 0 or spec.crop < FACE_SIZE:
        x = FaceJitter(spec.jitter, seed=seed + 7, crop=spec.crop, name="jitter")(x)
    return faces, x


def augmentation(strength: float, seed: int) -> keras.Sequential:
    """Rotation, zoom, shift, horizontal flip, brightness and contrast; identity at inference."""
    s = strength
    return keras.Sequential(
        [
            layers.RandomRotation(0.04 * s, fill_mode="reflect", seed=seed),
            layers.RandomZoom(0.1 * s, fill_mode="reflect", seed=seed + 1),
            layers.RandomTranslation(0.08 * s, 0.08 * s, fill_mode="reflect", seed=seed + 2),
            layers.RandomFlip("horizontal", seed=seed + 3),
            layers.RandomBrightness(0.15 * s, value_range=(0.0, 1.0), seed=seed + 4),
            layers.RandomContrast(0.2 * s, seed=seed + 5),
        ],
        name="augment",
    )


def paper_cnn(spec: ModelSpec, seed: int) -> keras.Model:
    """The reference architecture, layer for layer (1,375,175 parameters at 48x48x1)."""
    faces, x = face_input(spec, seed)
    x = layers.Conv2D(64, 5, activation="relu", name="conv1")(x)
    x = layers.Conv2D(64, 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Dropout(spec.dropout, seed=seed, name="drop1")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="conv3")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="conv4")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Dropout(spec.dropout, seed=seed + 1, name="drop2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    emotions = emotion_head(x)
    return keras.Model(faces, emotions, name="paper_cnn")


def attention_cnn(spec: ModelSpec, seed: int) -> keras.Model:
    """Stages of two conv+BN+ReLU layers, an attention block and max-pooling; width doubles per
    stage. The last map is flattened (faces are centred, so where a feature sits matters)
    and dropout sits only in the head: with dropout inside the stages, or global average
    pooling, learning stalled at chance for 5+ epochs on the synthetic faces."""
    faces, x = face_input(spec, seed)
    x = plain_stages(x, spec, convs_per_stage=2)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(spec.dropout, seed=seed + 99, name="head_drop")(x)
    emotions = emotion_head(x)
    name = f"attention_cnn_{spec.attention}_w{spec.width}_d{spec.depth}{suffix(spec)}"
    return keras.Model(faces, emotions, name=name)


def res_attention_cnn(spec: ModelSpec, seed: int) -> keras.Model:
    """A residual CNN sized for real-time CPU inference: a 48x48 stem, max-pooling to 24x24,
    then `depth` stages of `blocks` residual blocks (each stage halves the map and doubles the
    width), an attention block closing each stage (or those `spec.attention_stages` names),
    global average pooling and dropout.

    Width 32, depth 4, one block: about 1.2 M parameters and 35 M multiply-adds per face.
    `stem_pool=False` keeps the first stage at 48x48 (four times the work of that stage)."""
    faces, x = face_input(spec, seed)
    x = layers.Conv2D(spec.width, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    if spec.stem_pool:
        x = layers.MaxPooling2D(name="stem_pool")(x)
    for stage in range(spec.depth):
        filters = spec.width * 2**stage
        for block in range(spec.blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, filters, stride, name=f"s{stage}_b{block}")
        if spec.has_attention(stage):
            x = attention_block(spec.attention, name=f"s{stage}_attention")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(spec.dropout, seed=seed + 99, name="head_drop")(x)
    emotions = emotion_head(x)
    pool = "" if spec.stem_pool else "_full"
    name = (
        f"res_attention_cnn_{spec.attention}_w{spec.width}_d{spec.depth}_b{spec.blocks}"
        f"{pool}{suffix(spec)}"
    )
    return keras.Model(faces, emotions, name=name)


def vgg_attention_cnn(spec: ModelSpec, seed: int) -> keras.Model:
    """A VGG-style CNN at full resolution, the shape of the strongest from-scratch FER2013
    models (Khaireddin & Chen 2021): no stride or pooling before the first `blocks` 3x3
    conv+BN+ReLU layers at 48x48, then `depth` stages that each max-pool and double the width
    (at most 512), an attention block closing each stage (or those `spec.attention_stages`
    names), and a dense head on the flattened map.

    Width 64, depth 4, two layers a stage: about 6 M parameters and 470 M multiply-adds a face,
    a model for accuracy (and a GPU to train it), not for real-time CPU inference."""
    faces, x = face_input(spec, seed)
    x = plain_stages(x, spec, convs_per_stage=spec.blocks)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(spec.dropout, seed=seed + 98, name="flat_drop")(x)
    x = layers.Dense(256, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="dense_bn")(x)
    x = layers.ReLU(name="dense_relu")(x)
    x = layers.Dropout(spec.dropout, seed=seed + 99, name="head_drop")(x)
    emotions = emotion_head(x)
    name = (
        f"vgg_attention_cnn_{spec.attention}_w{spec.width}_d{spec.depth}_b{spec.blocks}"
        f"{suffix(spec)}"
    )
    return keras.Model(faces, emotions, name=name)


def suffix(spec: ModelSpec) -> str:
    """What the name adds for attention in some stages only, and for random-crop training."""
    placed = f"_{spec.attention_stages}" if spec.attention_stages != "all" else ""
    return placed + (f"_crop{spec.crop}" if spec.crop < FACE_SIZE else "")


def plain_stages(x: keras.KerasTensor, spec: ModelSpec, *, convs_per_stage: int):
    """`spec.depth` stages of 3x3 conv+BN+ReLU layers at the incoming resolution, each closed
    by an attention block (where `spec.has_attention`) and 2x2 max-pooling; the width doubles
    per stage, at most 512. BN momentum 0.9: its running statistics settle within the few
    hundred steps of a trial (BN_MOMENTUM)."""
    for stage in range(spec.depth):
        filters = min(spec.width * 2**stage, 512)
        for conv in range(convs_per_stage):
            x = layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"s{stage}_conv{conv}"
            )(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{stage}_bn{conv}")(x)
            x = layers.ReLU(name=f"s{stage}_relu{conv}")(x)
        if spec.has_attention(stage):
            x = attention_block(spec.attention, name=f"s{stage}_attention")(x)
        x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)
    return x


def emotion_head(x: keras.KerasTensor) -> keras.KerasTensor:
    """Seven softmax probabilities, in float32 even under mixed precision: bfloat16 resolves
    probabilities near 1 only to about 0.004, too coarse for the loss and for calibration."""
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="emotion")(x)


def residual_block(x: keras.KerasTensor, filters: int, stride: int, *, name: str):
    """Two 3x3 conv+BN, added to the input (projected by a 1x1 conv when the shape changes)."""
    shortcut = x
    y = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv0"
    )(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn0")(y)
    y = layers.ReLU(name=f"{name}_relu0")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    if stride != 1:  # average, then project (ResNet-D): a strided 1x1 conv drops 3/4 of
        # the input, and TensorFlow 2.21's oneDNN kernels crash training one on a 48x48 map
        shortcut = layers.AveragePooling2D(stride, padding="same", name=f"{name}_down")(x)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


MODEL_BUILDERS: dict[str, Callable[[ModelSpec, int], keras.Model]] = {
    "paper_cnn": paper_cnn,
    "attention_cnn": attention_cnn,
    "res_attention_cnn": res_attention_cnn,
    "vgg_attention_cnn": vgg_attention_cnn,
}


def load_model(path) -> keras.Model:
    """Load a saved `.keras` model; importing this module registers our custom layers first."""
    return keras.models.load_model(path)
