"""Per-channel power-of-2 weight scales as one power-of-2 scale, which hls4ml 1.3 can convert.

hls4ml 1.3 turns a constant Quant into a weight precision only when every channel has the same power-of-2 scale;
otherwise it makes an ApplyAlpha whose input list is empty, and its precision inference fails (IndexError) on the
fused and the unfused design alike. Per-channel power-of-2 scales are what QDQ files (onnxruntime's per-channel
static quantization) and Brevitas' per-channel quantizers write. The weights are quantized here with qonnx's own
int_quant, then given the finest channel scale and as many more bits as the coarsest channel is coarser: every
quantized weight lies on that finer grid and in that range, so the new Quant returns exactly the same numbers.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def is_po2(scale: np.ndarray) -> bool:
    """Every element a positive power of 2 (what hls4ml 1.3 turns into a fixed-point type rather than a scale)."""
    mantissa, _ = np.frexp(scale)
    return bool(np.all(scale > 0) and np.all(mantissa == 0.5))


def uniform_po2_weight_scales(model: onnx.ModelProto) -> list[str]:
    """Rewrite each constant, zero-point-free Quant with unequal power-of-2 scales in place; returns the nodes."""
    from qonnx.custom_op.general.intquant import int_quant

    inits = {t.name: t for t in model.graph.initializer}
    changed = []
    for node in model.graph.node:
        if node.op_type != "Quant" or not all(name in inits for name in node.input[:4]):
            continue
        weights, scale, zeropt, bits = (numpy_helper.to_array(inits[name]) for name in node.input[:4])
        if scale.size == 1 or np.all(scale == scale.flat[0]) or np.any(zeropt) or bits.size != 1 or not is_po2(scale):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("rounding_mode", b"ROUND")
        quantized = int_quant(
            weights,
            scale,
            zeropt,
            bits,
            attrs.get("signed", 1),
            attrs.get("narrow", 0),
            mode.decode() if isinstance(mode, bytes) else mode,
        ).astype(np.float32)
        exponents = np.frexp(scale)[1]
        shift = int(exponents.max() - exponents.min())
        values = {
            node.input[0]: quantized,
            node.input[1]: np.array(scale.min(), np.float32),
            node.input[3]: np.array(bits.item() + shift, np.float32),
        }
        for index, (name, value) in enumerate(values.items()):
            fresh = f"{name}_uniform"
            model.graph.initializer.append(numpy_helper.from_array(value, fresh))
            node.input[[0, 1, 3][index]] = fresh
        changed.append(node.name or node.output[0])
    return changed
