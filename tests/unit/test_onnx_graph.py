"""Graph rewrites of exported models keep every output to the bit."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ferops.inference.onnx_graph import drop_lossless_input_quantization
from ferops.models.shipped import FAST


def rescaling_graph(source: int) -> onnx.ModelProto:
    """What quantizing a model's start gives: face -> Cast -> Quantize/Dequantize (scale 1,
    zero point 0) -> x / 255."""
    constants = [
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("zero", TensorProto.UINT8, [], [0]),
        helper.make_tensor("step", TensorProto.FLOAT, [], [1 / 255]),
    ]
    nodes = [
        helper.make_node("Cast", ["face"], ["real"], to=TensorProto.FLOAT),
        helper.make_node("QuantizeLinear", ["real", "one", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "one", "zero"], ["dq"]),
        helper.make_node("Mul", ["dq", "step"], ["scaled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "start",
        [helper.make_tensor_value_info("face", source, [None, 256])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [None, 256])],
        constants,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def outputs(model: onnx.ModelProto, faces: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"face": faces})[0]


def test_the_quantize_pair_after_a_uint8_cast_goes_and_every_value_comes_out_the_same():
    model = rescaling_graph(TensorProto.UINT8)
    every_value = np.arange(256, dtype=np.uint8)[None]
    before = outputs(model, every_value)
    assert drop_lossless_input_quantization(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Cast", "Mul"]
    assert {t.name for t in model.graph.initializer} == {"step"}
    np.testing.assert_array_equal(outputs(model, every_value), before)


@pytest.mark.parametrize("source", [TensorProto.INT8, TensorProto.FLOAT])
def test_a_pair_that_would_round_or_clip_stays(source):
    """From int8 (negatives clip to 0) or float (fractions round), the pair changes values."""
    model = rescaling_graph(source)
    assert drop_lossless_input_quantization(model) == 0
    assert len(model.graph.node) == 4


def test_the_shipped_fast_model_has_no_such_pair_left():
    assert drop_lossless_input_quantization(onnx.load(FAST.verified())) == 0
