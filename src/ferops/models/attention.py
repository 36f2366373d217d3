"""Attention blocks for convolutional feature maps, keyed by name for hyper-parameter search.

Each is a serialisable Keras layer (registered, with `get_config`), so a saved `.keras` model
loads back whole.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="ferops")
class SpatialAttention(layers.Layer):
    """CBAM's spatial module (Woo et al., ECCV 2018, arXiv:1807.06521).

    Pools the feature map over channels (mean and max), convolves the two maps with a
    `kernel_size` filter and a sigmoid, and rescales every position by the result: the network
    learns *where* to look (eyes, brows, mouth) at almost no cost.
    """

    def __init__(self, kernel_size: int = 7, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        # Sublayers take this layer's dtype policy: a model saved in mixed precision must load
        # back with its attention map in the dtype of the features it multiplies.
        self.conv = layers.Conv2D(
            1, kernel_size, padding="same", activation="sigmoid", dtype=self.dtype_policy
        )

    def build(self, input_shape) -> None:
        self.conv.build((*input_shape[:-1], 2))
        super().build(input_shape)

    def attention_map(self, inputs, training: bool = False):
        """The (N, H, W, 1) weights in [0, 1] this block multiplies its input by. Training
        computes the same convolution another way (`one_filter_conv`, six times faster); at
        inference the graph holds the plain Conv2D that exporters and runtimes know."""
        pooled = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )
        if not training:
            return self.conv(pooled)
        # In float32 whatever the policy: a few maps, at no cost.
        maps, kernel, bias = (
            ops.cast(x, "float32") for x in (pooled, self.conv.kernel, self.conv.bias)
        )
        convolved = self.conv.activation(one_filter_conv(maps, kernel) + bias)
        return ops.cast(convolved, pooled.dtype)

    def call(self, inputs, training: bool = False):
        return inputs * self.attention_map(inputs, training)

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": self.kernel_size}


def one_filter_conv(maps, kernel):
    """`maps` (N, H, W, C) convolved with `kernel` (k, k, C, 1), 'same' padding: Conv2D's
    answer, computed as one depthwise convolution of a single image whose channels are the
    batch's N*C maps. oneDNN runs a one-filter Conv2D slowly: forward and backward for 64 maps
    of 48x48x2 took 126 ms that way and 20 ms this way (AMD EPYC, AVX2), and the default model
    trained at 130 images/s that way, 215 this way (benchmarks/train_speed.py)."""
    height, width, channels = maps.shape[1:]
    count = ops.shape(maps)[0]
    folded = ops.reshape(ops.transpose(maps, (1, 2, 0, 3)), (1, height, width, -1))
    each = ops.depthwise_conv(folded, ops.tile(kernel, (1, 1, count, 1)), padding="same")
    summed = ops.sum(ops.reshape(each, (height, width, -1, channels)), axis=-1)
    return ops.expand_dims(ops.transpose(summed, (2, 0, 1)), axis=-1)


@keras.saving.register_keras_serializable(package="ferops")
class ChannelAttention(layers.Layer):
    """CBAM's channel module (Woo et al., 2018): a shared MLP over average- and max-pooled
    channel descriptors, summed and squashed by a sigmoid, reweights *which* features matter."""

    def __init__(self, reduction: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reduction = reduction

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        hidden = max(channels // self.reduction, 4)
        self.squeeze = layers.Dense(hidden, activation="relu", dtype=self.dtype_policy)
        self.excite = layers.Dense(channels, dtype=self.dtype_policy)
        self.squeeze.build((None, channels))
        self.excite.build((None, hidden))
        super().build(input_shape)

    def call(self, inputs):
        avg = self.excite(self.squeeze(ops.mean(inputs, axis=(1, 2))))
        peak = self.excite(self.squeeze(ops.max(inputs, axis=(1, 2))))
        weights = ops.sigmoid(avg + peak)
        return inputs * weights[:, None, None, :]

    def get_config(self) -> dict:
        return {**super().get_config(), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="ferops")
class CBAM(layers.Layer):
    """Convolutional Block Attention Module (Woo et al., 2018): channel, then spatial."""

    def __init__(self, reduction: int = 8, kernel_size: int = 7, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reduction = reduction
        self.kernel_size = kernel_size
        self.channel = ChannelAttention(reduction, dtype=self.dtype_policy)
        self.spatial = SpatialAttention(kernel_size, dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        self.channel.build(input_shape)
        self.spatial.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        return self.spatial(self.channel(inputs))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "kernel_size": self.kernel_size,
        }


ATTENTION_BLOCKS: dict[str, type[layers.Layer] | None] = {
    "none": None,
    "spatial": SpatialAttention,
    "cbam": CBAM,
}


def attention_block(kind: str, *, name: str) -> layers.Layer | None:
    """Return a fresh attention layer of `kind` (None for "none")."""
    if kind not in ATTENTION_BLOCKS:
        raise ValueError(
            f"unknown attention {kind!r}; expected one of {', '.join(ATTENTION_BLOCKS)}"
        )
    block = ATTENTION_BLOCKS[kind]
    return block(name=name) if block else None


def spatial_attention_maps(model, faces):
    """The first spatial-attention block's maps for `faces`, resized to 48x48 (N, 48, 48);
    None when the model has no spatial attention."""
    import keras
    import numpy as np

    for layer in model.layers:
        spatial = (
            layer
            if isinstance(layer, SpatialAttention)
            else (layer.spatial if isinstance(layer, CBAM) else None)
        )
        if spatial is None:
            continue
        features = keras.Model(model.inputs[0], layer.input)(faces, training=False)
        if isinstance(layer, CBAM):
            features = layer.channel(features)
        maps = np.asarray(spatial.attention_map(features))
        resized = keras.ops.image.resize(maps, (48, 48))
        return np.asarray(resized)[..., 0]
    return None
