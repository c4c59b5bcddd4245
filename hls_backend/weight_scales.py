"""Per-output-channel float weight scales moved below their layer, where hls4ml 1.3 can take them.

A weight Quant with a float scale per output channel (QKeras `quantized_bits(alpha='auto')`, Brevitas
`Int8WeightPerChannelFloat`) computes W = s[o] * z, z integer. hls4ml 1.3 moves such a scale below the layer itself
(move_scales.py) and cannot for a per-channel one on a MatMul (it broadcasts the weight-shaped scale to the output
shape) or on a Conv with a bias (only a scalar scale passes with a bias): it leaves the weight behind and crashes.
The same function, written so hls4ml takes it: the layer on the integer weights z with no bias, then `Mul(s)`, then
`Add(bias)`, on the channels-last graph (the output channel is the last axis):

    sum_i x[i] * (s[o] * z[i, o]) + b[o] == s[o] * sum_i x[i] * z[i, o] + b[o]   (exactly, in real arithmetic)

hls4ml makes the Mul and the Add one ApplyAlpha (MergeToApplyAlpha, then FuseConsecutiveBatchNormalization), which
the fused layer's write-back absorbs per channel. The Mul's constant goes through a Quant with a power-of-2 scale
wide enough to hold every s[o] exactly (float32: 24 significant bits), so hls4ml types the ApplyAlpha's scale from
it and multiplies by s[o] itself, not by s[o] rounded to the model's default precision.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hls_backend.pooling import CL_DOMAIN
from onnx_fuse.qonnx_ops import QONNX_DOMAIN


def exact_quant_of(values: np.ndarray) -> tuple[float, int]:
    """(power-of-2 scale, bits) of an unsigned Quant that returns these positive float32 values unchanged."""
    _, exponent = np.frexp(values.astype(np.float64))
    step = int(exponent.min()) - 24  # below the least significant bit of the smallest value's 24-bit significand
    integers = np.ldexp(values.astype(np.float64), -step)
    assert np.array_equal(integers, np.round(integers)), "a float32 is an integer multiple of 2**(exponent - 24)"
    return float(2.0**step), int(integers.max()).bit_length()


def per_channel_scale(scale: np.ndarray, weight_ndim: int, channel_axis: int) -> np.ndarray | None:
    """The scale as one value per output channel, or None when it also varies along another axis."""
    if scale.ndim > weight_ndim or np.all(scale == scale.flat[0]):
        return None
    scale = scale.reshape((1,) * (weight_ndim - scale.ndim) + scale.shape)  # ONNX broadcasting aligns from the right
    if any(size != 1 for axis, size in enumerate(scale.shape) if axis != channel_axis):
        return None
    return scale.reshape(-1)


class Rewriter:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producers = {out: node for node in self.graph.node for out in node.output}
        self.readers: dict[str, int] = {}
        for node in self.graph.node:
            for name in node.input:
                self.readers[name] = self.readers.get(name, 0) + 1
        self.count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value, np.float32)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        # hls4ml's ONNX reader looks up a shape in value_info for every node input, initializers included
        self.graph.value_info.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, value.shape))
        return name

    def weight_quant(self, node: onnx.NodeProto) -> onnx.NodeProto | None:
        quant = self.producers.get(node.input[1]) if len(node.input) > 1 else None
        if quant is None or quant.op_type != "Quant" or not all(i in self.inits for i in quant.input[:4]):
            return None
        if self.readers[quant.output[0]] != 1:
            return None  # a weight shared with another layer: rewriting it would change that layer too
        return quant

    def rewrite(self, node: onnx.NodeProto, quant: onnx.NodeProto, channel_axis: int) -> list[onnx.NodeProto] | None:
        from qonnx.custom_op.general.intquant import int_quant

        weight, scale, zeropt, bits = (numpy_helper.to_array(self.inits[i]) for i in quant.input[:4])
        channels = per_channel_scale(scale, weight.ndim, channel_axis)
        if channels is None or np.any(zeropt) or np.any(channels <= 0) or not np.all(np.isfinite(channels)):
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in quant.attribute}
        mode = attrs.get("rounding_mode", b"ROUND")
        # qonnx's int_quant returns the rescaled values s * z (what the Quant outputs); z is recovered from them
        values = int_quant(
            weight, scale, zeropt, bits, attrs.get("signed", 1), attrs.get("narrow", 0),
            mode.decode() if isinstance(mode, bytes) else mode,
        )
        integers = np.round(values / scale).astype(np.float32)
        if not np.array_equal((integers * scale).astype(np.float32), values.astype(np.float32)):
            return None
        self.count += 1
        tag = f"weight_scale_{self.count}"  # nodes have no names yet at this point of qonnx's recipe
        quant.input[0] = self.constant(f"{tag}_integers", integers)
        quant.input[1] = self.constant(f"{tag}_one", np.float32(1.0))
        # s[o] exactly, typed by a Quant with a power-of-2 scale (hls4ml: a constant with that precision)
        step, width = exact_quant_of(channels.astype(np.float32))
        scaled = f"{tag}_values"
        new = [
            helper.make_node(
                "Quant",
                [self.constant(f"{tag}_channels", channels), self.constant(f"{tag}_step", np.float32(step)),
                 self.constant(f"{tag}_zeropt", np.float32(0)), self.constant(f"{tag}_bits", np.float32(width))],
                [scaled], name=f"{tag}_quant", domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND",
            )
        ]
        output = node.output[0]
        node.output[0] = f"{tag}_unscaled"
        bias = node.input[2] if node.op_type == "Conv" and len(node.input) > 2 else None
        if bias is not None:
            del node.input[2]
        new.append(helper.make_node("Mul", [node.output[0], scaled], [f"{tag}_scaled" if bias else output],
                                    name=f"{tag}_mul"))
        if bias is not None:
            new.append(helper.make_node("Add", [f"{tag}_scaled", bias], [output], name=f"{tag}_bias"))
        return new


def move_weight_scales_below(model: onnx.ModelProto) -> list[str]:
    """Rewrite, in place on a channels-last graph, each MatMul / Conv whose constant weight Quant has a float scale per
    output channel; returns the rewritten layers. Per-tensor scales and power-of-2 ones are left to hls4ml."""
    rewriter = Rewriter(model)
    order: list[onnx.NodeProto] = []
    changed = []
    for node in list(model.graph.node):
        order.append(node)
        is_conv = node.op_type == "Conv" and node.domain == CL_DOMAIN
        if node.op_type != "MatMul" and not is_conv:
            continue
        quant = rewriter.weight_quant(node)
        if quant is None:
            continue
        # MatMul weight (in, out): output channel on the last axis; channels-last Conv weight (out, kh, kw, in): first
        new = rewriter.rewrite(node, quant, channel_axis=0 if is_conv else 1)
        if new:
            order.extend(new)
            changed.append(node.name)
    del model.graph.node[:]
    model.graph.node.extend(order)
    used = {name for node in model.graph.node for name in node.input}
    unused = {t.name for t in model.graph.initializer} - used  # the float weights and scales replaced above
    for entries in (model.graph.initializer, model.graph.value_info):
        kept = [t for t in entries if t.name not in unused]
        del entries[:]
        entries.extend(kept)
    return changed
