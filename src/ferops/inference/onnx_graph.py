"""Rewrites of exported ONNX graphs that keep every output the same to the bit.

onnx is imported here only: `ferops export` and its tools use this module; answering a face
never does.
"""

from __future__ import annotations

from typing import Any

from onnx import TensorProto, numpy_helper, shape_inference


def drop_lossless_input_quantization(model: Any) -> int:
    """Remove each QuantizeLinear/DequantizeLinear pair (scale 1, zero point 0) that follows a
    Cast of a uint8 tensor (the face) to float: it maps 0..255 to themselves, but ONNX Runtime
    fuses it with the model's rescale (x / 255) into a quantized Mul, 61 of the shipped fast
    model's 406 microseconds a face (2-core AMD EPYC, AVX512-VNNI). Without it the rescale runs
    in float, and the outputs are the same to the bit (the fast model, 5,000 random faces).
    Returns the pairs removed."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}  # read as arrays only where needed
    typed = shape_inference.infer_shapes(model).graph
    types = {
        value.name: value.type.tensor_type.elem_type
        for value in [*typed.input, *typed.value_info, *typed.output]
    }
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def identity(quantize: Any) -> bool:
        scale, zero = (constants.get(name) for name in quantize.input[1:3])
        if scale is None or zero is None:
            return False
        return float(numpy_helper.to_array(scale)) == 1 and int(numpy_helper.to_array(zero)) == 0

    dropped = []
    uint8 = TensorProto.UINT8
    casts = [n for n in graph.node if n.op_type == "Cast" and types.get(n.input[0]) == uint8]
    for cast in casts:
        after_cast = readers.get(cast.output[0], [])
        if len(after_cast) != 1 or after_cast[0].op_type != "QuantizeLinear":
            continue
        quantize = after_cast[0]
        dequantizes = readers.get(quantize.output[0], [])
        if not identity(quantize) or any(n.op_type != "DequantizeLinear" for n in dequantizes):
            continue
        for dequantize in dequantizes:
            for reader in readers.get(dequantize.output[0], []):
                reader.input[:] = [
                    cast.output[0] if name == dequantize.output[0] else name
                    for name in reader.input
                ]
        dropped += [quantize, *dequantizes]
    for node in dropped:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    freed = {name for node in dropped for name in node.input} - used
    for constant in [t for t in graph.initializer if t.name in freed]:
        graph.initializer.remove(constant)
    return sum(node.op_type == "QuantizeLinear" for node in dropped)
