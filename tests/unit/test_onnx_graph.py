"""Graph rewrites of exported int8 models: the exact ones keep every output to the bit, the
float convolution keeps them within a quantization step, and each leaves alone what it must."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ferops.inference.onnx_graph import (
    dequantize_single_channel_convolutions,
    drop_lossless_input_quantization,
    fix_computed_flatten_shapes,
    quantize_the_face_as_it_comes,
    speed_up_int8,
)
from ferops.models.shipped import FAST

EVERY_VALUE = np.arange(256, dtype=np.uint8)[None]


def model_of(nodes, inputs, outputs, constants) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def scalar(name: str, kind: int, value: float) -> onnx.TensorProto:
    return helper.make_tensor(name, kind, [], [value])


def rescaling_graph(source: int) -> onnx.ModelProto:
    """What quantizing a model's start gives: face -> Cast -> Quantize/Dequantize (scale 1,
    zero point 0) -> x / 255."""
    nodes = [
        helper.make_node("Cast", ["face"], ["real"], to=TensorProto.FLOAT),
        helper.make_node("QuantizeLinear", ["real", "one", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "one", "zero"], ["dq"]),
        helper.make_node("Mul", ["dq", "step"], ["scaled"]),
    ]
    constants = [
        scalar("one", TensorProto.FLOAT, 1.0),
        scalar("zero", TensorProto.UINT8, 0),
        scalar("step", TensorProto.FLOAT, 1 / 255),
    ]
    face = helper.make_tensor_value_info("face", source, [None, 256])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [None, 256])
    return model_of(nodes, [face], [scaled], constants)


def requantized_face(scale: float) -> onnx.ModelProto:
    """face -> Cast -> x / 255 -> Quantize (`scale`, zero point 0) -> Dequantize."""
    nodes = [
        helper.make_node("Cast", ["face"], ["real"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["real", "step"], ["scaled"]),
        helper.make_node("QuantizeLinear", ["scaled", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
    ]
    constants = [
        scalar("step", TensorProto.FLOAT, 1 / 255),
        scalar("scale", TensorProto.FLOAT, scale),
        scalar("zero", TensorProto.UINT8, 0),
    ]
    face = helper.make_tensor_value_info("face", TensorProto.UINT8, [None, 256])
    dq = helper.make_tensor_value_info("dq", TensorProto.FLOAT, [None, 256])
    return model_of(nodes, [face], [dq], constants)


def flattening_graph() -> onnx.ModelProto:
    """A Keras Flatten as exported: the target shape computed from the input's shape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "start", "end"], ["batch"]),
        helper.make_node("Concat", ["batch", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
    ]
    constants = [
        numpy_helper.from_array(np.array([0]), "start"),
        numpy_helper.from_array(np.array([1]), "end"),
        numpy_helper.from_array(np.array([12]), "rest"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3, 2])
    flat = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["batch", 12])
    return model_of(nodes, [x], [flat], constants)


def quantized_convolution(channels: int) -> onnx.ModelProto:
    """uint8 faces -> Dequantize (1/255) -> Conv (int8 weights per output channel, int32
    bias, ReLU) -> Quantize/Dequantize: the start of a quantized face model."""
    rng = np.random.default_rng(0)
    kernel = rng.integers(-127, 128, (4, channels, 3, 3)).astype(np.int8)
    kernel_scale = rng.uniform(0.001, 0.01, 4).astype(np.float32)
    bias = rng.integers(-500, 500, 4).astype(np.int32)
    nodes = [
        helper.make_node("DequantizeLinear", ["face", "pixel", "zero"], ["x"]),
        helper.make_node("DequantizeLinear", ["kernel", "kernel_scale", "kernel_zero"], ["w"]),
        helper.make_node("DequantizeLinear", ["bias", "bias_scale", "bias_zero"], ["b"]),
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("QuantizeLinear", ["relu", "out_scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "out_scale", "zero"], ["out"]),
    ]
    constants = [
        scalar("pixel", TensorProto.FLOAT, 1 / 255),
        scalar("zero", TensorProto.UINT8, 0),
        numpy_helper.from_array(kernel, "kernel"),
        numpy_helper.from_array(kernel_scale, "kernel_scale"),
        numpy_helper.from_array(np.zeros(4, np.int8), "kernel_zero"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(kernel_scale / 255, "bias_scale"),
        numpy_helper.from_array(np.zeros(4, np.int32), "bias_zero"),
        scalar("out_scale", TensorProto.FLOAT, 0.02),
    ]
    for node in nodes[1:3]:
        node.attribute.append(helper.make_attribute("axis", 0))
    face = helper.make_tensor_value_info("face", TensorProto.UINT8, [None, channels, 12, 12])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 12, 12])
    return model_of(nodes, [face], [out], constants)


def outputs(model: onnx.ModelProto, inputs: np.ndarray, name: str = "face") -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {name: inputs})[0]


def operators_run(model: onnx.ModelProto, tmp_path) -> set[str]:
    """The operators ONNX Runtime runs after its graph optimisations (fusions included)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return {node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node}


def test_the_quantize_pair_after_a_uint8_cast_goes_and_every_value_comes_out_the_same():
    model = rescaling_graph(TensorProto.UINT8)
    before = outputs(model, EVERY_VALUE)
    assert drop_lossless_input_quantization(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Cast", "Mul"]
    assert {t.name for t in model.graph.initializer} == {"step"}
    np.testing.assert_array_equal(outputs(model, EVERY_VALUE), before)


@pytest.mark.parametrize("source", [TensorProto.INT8, TensorProto.FLOAT])
def test_a_pair_that_would_round_or_clip_stays(source):
    """From int8 (negatives clip to 0) or float (fractions round), the pair changes values."""
    model = rescaling_graph(source)
    assert drop_lossless_input_quantization(model) == 0
    assert len(model.graph.node) == 4


def test_a_face_requantized_at_its_own_scale_is_read_as_it_comes():
    model = requantized_face(1 / 255)
    before = outputs(model, EVERY_VALUE)
    assert quantize_the_face_as_it_comes(model) == 1
    assert [node.op_type for node in model.graph.node] == ["DequantizeLinear"]
    assert model.graph.node[0].input[0] == "face"
    np.testing.assert_array_equal(outputs(model, EVERY_VALUE), before)


def test_a_face_requantized_at_another_scale_keeps_its_quantization():
    """At 2/255 the quantization merges neighbouring values: reading the face would differ."""
    model = requantized_face(2 / 255)
    assert quantize_the_face_as_it_comes(model) == 0
    assert len(model.graph.node) == 4


def test_a_cast_face_read_by_anything_but_a_rescale_is_left_alone():
    nodes = [
        helper.make_node("Cast", ["face"], ["real"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["real"], ["out"]),
    ]
    face = helper.make_tensor_value_info("face", TensorProto.UINT8, [None, 256])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 256])
    model = model_of(nodes, [face], [out], [])
    assert quantize_the_face_as_it_comes(model) == 0
    assert [node.op_type for node in model.graph.node] == ["Cast", "Relu"]


def test_a_computed_flatten_shape_becomes_a_constant_and_any_batch_still_flattens():
    model = flattening_graph()
    batches = [np.random.default_rng(n).random((n, 2, 3, 2), np.float32) for n in (1, 3)]
    before = [outputs(model, batch, "x") for batch in batches]
    assert fix_computed_flatten_shapes(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Reshape"]
    for batch, expected in zip(batches, before, strict=True):
        np.testing.assert_array_equal(outputs(model, batch, "x"), expected)


def test_a_single_channel_convolution_runs_in_float_within_a_quantization_step(tmp_path):
    model = quantized_convolution(channels=1)
    faces = np.random.default_rng(1).integers(0, 256, (8, 1, 12, 12), dtype=np.uint8)
    before = outputs(model, faces)
    assert "QLinearConv" in operators_run(model, tmp_path)
    assert dequantize_single_channel_convolutions(model) == 1
    # ONNX Runtime must not quantize it back: it would, had the Conv read a DequantizeLinear.
    assert "QLinearConv" not in operators_run(model, tmp_path)
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    constants = {t.name: t for t in model.graph.initializer}
    assert {constants[name].data_type for name in conv.input[1:]} == {TensorProto.FLOAT}
    after = outputs(model, faces)
    assert np.abs(after - before).max() <= 0.02 + 1e-6  # one step of the output's scale
    assert np.mean(after == before) > 0.99


def test_a_convolution_over_several_channels_stays_quantized():
    model = quantized_convolution(channels=2)
    assert dequantize_single_channel_convolutions(model) == 0
    assert sum(node.op_type == "DequantizeLinear" for node in model.graph.node) == 4


def test_the_shipped_fast_model_has_every_rewrite_applied_already():
    assert set(speed_up_int8(onnx.load(FAST.verified())).values()) == {0}
