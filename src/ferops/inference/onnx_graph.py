"""Rewrites of exported int8 ONNX graphs that make one face cheaper to answer.

ONNX Runtime fuses a quantized graph's quantize/dequantize pairs with the operators between
them; what the quantizer leaves at the graph's start and around the flatten made the shipped
fast model spend a third of a face's time outside its convolutions. All but the last rewrite
keep every output the same to the bit; the last changes outputs within int8 rounding (the
export's parity check runs on the rewritten file). Measured on the shipped fast model:
docs/performance.md, "The fast model's graph".

onnx is imported here only: `ferops export` and its tools use this module; answering a face
never does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper, shape_inference

UINT8_VALUES = np.arange(256, dtype=np.float32)


def speed_up_int8(model: Any) -> dict[str, int]:
    """Apply every rewrite below in order; returns how many places each one changed."""
    return {
        rewrite.__name__: rewrite(model)
        for rewrite in (
            drop_lossless_input_quantization,
            quantize_the_face_as_it_comes,
            fix_computed_flatten_shapes,
            dequantize_single_channel_convolutions,
        )
    }


def drop_lossless_input_quantization(model: Any) -> int:
    """Remove each QuantizeLinear/DequantizeLinear pair (scale 1, zero point 0) that follows a
    Cast of a uint8 tensor (the face) to float: it maps 0..255 to themselves, but ONNX Runtime
    fuses it with the model's rescale (x / 255) into a quantized Mul, 61 of the shipped fast
    model's 406 microseconds a face (2-core AMD EPYC, AVX512-VNNI). Without it the rescale runs
    in float, and the outputs are the same to the bit (the fast model, 5,000 random faces).
    Returns the pairs removed."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}  # read as arrays only where needed
    readers = _readers(graph)

    def identity(quantize: Any) -> bool:
        scale, zero = (constants.get(name) for name in quantize.input[1:3])
        if scale is None or zero is None:
            return False
        return float(numpy_helper.to_array(scale)) == 1 and int(numpy_helper.to_array(zero)) == 0

    dropped = 0
    for cast in _uint8_casts(model):
        after_cast = readers.get(cast.output[0], [])
        if len(after_cast) != 1 or after_cast[0].op_type != "QuantizeLinear":
            continue
        quantize = after_cast[0]
        dequantizes = readers.get(quantize.output[0], [])
        if not identity(quantize) or any(n.op_type != "DequantizeLinear" for n in dequantizes):
            continue
        for dequantize in dequantizes:
            _read_instead(graph, dequantize.output[0], cast.output[0])
        dropped += 1
    _prune(graph)
    return dropped


def quantize_the_face_as_it_comes(model: Any) -> int:
    """Where a uint8 face is cast to float, rescaled by a constant (x / 255) and quantized
    again with that constant as its scale, the quantized values are the face's own: the first
    convolution reads the face itself, and the cast, the rescale and the quantization go.
    Checked for every value 0..255 before anything changes; returns the places rewritten."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    makers = {output: node for node in graph.node for output in node.output}
    readers = _readers(graph)  # rewiring below changes only what the quantizations' readers read
    rewritten = 0
    for cast in _uint8_casts(model):
        for rescale in readers.get(cast.output[0], []):
            if rescale.op_type != "Mul" or rescale.input[0] != cast.output[0]:
                continue
            factor = _constant(rescale.input[1], constants, makers)
            if factor is None or factor.size != 1:
                continue
            for quantize in readers.get(rescale.output[0], []):
                if quantize.op_type != "QuantizeLinear" or len(quantize.input) < 3:
                    continue
                scale, zero = (constants.get(name) for name in quantize.input[1:3])
                if scale is None or zero is None or zero.data_type != TensorProto.UINT8:
                    continue
                step, offset = numpy_helper.to_array(scale), numpy_helper.to_array(zero)
                if step.size != 1:
                    continue
                # As ONNX Runtime computes it: float32 product, division, round half to even.
                quantized = np.round(UINT8_VALUES * factor / step) + offset.astype(np.float32)
                if not np.array_equal(quantized, UINT8_VALUES):
                    continue
                _read_instead(graph, quantize.output[0], cast.input[0])
                rewritten += 1
    _prune(graph)
    return rewritten


def fix_computed_flatten_shapes(model: Any) -> int:
    """A Keras Flatten exports as a Reshape whose target shape is computed on every call
    (Shape, Gather, Slice, Concat and two Casts: six operators for one face). Where the shape
    works out as (batch, fixed sizes...), the Reshape gets that shape as a constant with -1
    for the batch, and the computation goes. Returns the Reshapes fixed."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    inferred = shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {
        value.name: [d.dim_value if d.HasField("dim_value") else None for d in _dims(value)]
        for value in [*inferred.value_info, *inferred.output]
    }
    fixed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] in constants:
            continue
        shape = shapes.get(node.output[0])
        if not shape or shape[0] is not None or not all(shape[1:]):
            continue
        name = f"{node.output[0]}_fixed_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([-1, *shape[1:]]), name))
        node.input[1] = name
        fixed += 1
    _prune(graph)
    return fixed


def dequantize_single_channel_convolutions(model: Any) -> int:
    """Run each convolution with one input channel (the first, on the grey face) in float:
    ONNX Runtime's quantized convolution is slow there, 60 microseconds against 12 in float for
    the fast model's first layer (2-core AMD EPYC, AVX512-VNNI). The convolution reads its
    quantized input cast to float (exact for 8-bit values) with the input's scale folded into
    its dequantized weights: it computes what the quantized one did up to float rounding, and
    its output is quantized as before. Only where the input's zero point is 0, and ONNX Runtime
    does not quantize it back: it re-quantizes float weights only of a convolution that reads a
    DequantizeLinear. Returns the convolutions changed."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    makers = {output: node for node in graph.node for output in node.output}
    changed = 0
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        source, weight = (makers.get(name) for name in conv.input[:2])
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        kernel = constants.get(weight.input[0]) if weight is not None else None
        if kernel is None or weight.op_type != "DequantizeLinear" or kernel.dims[1] * groups != 1:
            continue
        if source is None or source.op_type != "DequantizeLinear":
            continue
        scale = _constant(source.input[1], constants, makers)
        zero = _constant(source.input[2], constants, makers) if len(source.input) > 2 else None
        if scale is None or scale.size != 1 or (zero is not None and zero.any()):
            continue
        values = [_constant(name, constants, makers) for name in conv.input[1:]]
        if any(value is None for value in values):
            continue
        values[0] = (values[0] * scale).astype(np.float32)
        own = conv.output[0]  # names of this convolution's own, as readers may share a source
        for slot, value in enumerate(values, start=1):
            name = f"{own}_float_{'weight' if slot == 1 else 'bias'}"
            graph.initializer.append(numpy_helper.from_array(value, name))
            conv.input[slot] = name
        cast = helper.make_node(
            "Cast", [source.input[0]], [f"{own}_float_input"], to=TensorProto.FLOAT
        )
        graph.node.insert(list(graph.node).index(conv), cast)
        conv.input[0] = cast.output[0]
        changed += 1
    _prune(graph)
    return changed


def _uint8_casts(model: Any) -> list[Any]:
    inferred = shape_inference.infer_shapes(model).graph
    types = {
        value.name: value.type.tensor_type.elem_type
        for value in [*inferred.input, *inferred.value_info, *inferred.output]
    }
    return [
        node
        for node in model.graph.node
        if node.op_type == "Cast" and types.get(node.input[0]) == TensorProto.UINT8
    ]


def _constant(name: str, constants: dict[str, Any], makers: dict[str, Any]) -> Any:
    """The float32 value of `name`: an initializer, or a DequantizeLinear of initializers
    (per-tensor or along its axis); None when it is computed from the input."""
    if name in constants:
        return numpy_helper.to_array(constants[name]).astype(np.float32)
    node = makers.get(name)
    if node is None or node.op_type != "DequantizeLinear":
        return None
    if any(part not in constants for part in node.input):
        return None
    values, scale, *rest = (numpy_helper.to_array(constants[part]) for part in node.input)
    zero = rest[0] if rest else np.zeros_like(scale)
    if scale.ndim:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        along = [1] * values.ndim
        along[axis] = -1
        scale, zero = scale.reshape(along), zero.reshape(along)
    real = (values.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)
    return real.astype(np.float32)


def _dims(value: Any) -> Any:
    return value.type.tensor_type.shape.dim


def _readers(graph: Any) -> dict[str, list[Any]]:
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _read_instead(graph: Any, old: str, new: str) -> None:
    """Every node that read `old` reads `new`."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _prune(graph: Any) -> None:
    """Remove nodes whose outputs nothing reads, then constants nothing reads."""
    wanted = {output.name for output in graph.output}
    while True:
        read = wanted | {name for node in graph.node for name in node.input}
        dead = [node for node in graph.node if not any(out in read for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    for constant in [t for t in graph.initializer if t.name not in read]:
        graph.initializer.remove(constant)
