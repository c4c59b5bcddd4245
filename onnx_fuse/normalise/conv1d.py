"""Turn tf2onnx's Conv1D back into a 1-D Conv with its bias, so the Relu sits right after it.

tf2onnx exports Keras Conv1D as Unsqueeze -> Conv(1xK) -> Squeeze -> Add(bias) -> Relu, with the
first Unsqueeze in front of the layout Transpose. hls4ml's ONNX reader has no Unsqueeze/Squeeze, and onnxslim only
folds an Add that directly follows a Conv. Three onnxscript rewriter rules:
- Transpose(Unsqueeze(x))                       => Unsqueeze(Transpose(x))   (the unit axis moves past the layout)
- Squeeze(Conv(Unsqueeze(x, h), W), h)           => Conv(x, W without axis h) (a true 1-D conv)
- Add(Conv(x, W[, b]), per-channel constant c)   => Conv(x, W, b + c)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.normalise.rewrite import apply_rules


def single_use(*values: ir.Value) -> bool:
    return all(len(v.uses()) == 1 and not v.is_graph_output() for v in values)


def axes_of(value: ir.Value, rank: int) -> list[int] | None:
    axes = get_numpy_value(value)
    return None if axes is None else sorted(int(a) % rank for a in axes.reshape(-1))


class UnsqueezeBeforeTranspose(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, axes, perm):
        return op.Transpose(op.Unsqueeze(x, axes, _outputs=["unsqueezed"]), perm=perm)

    def check(self, context, x, axes, perm, unsqueezed, **_) -> bool:
        rank = len(perm.as_ints())
        return single_use(unsqueezed) and axes_of(axes, rank) is not None and len(axes_of(axes, rank)) == 1

    def rewrite(self, op, x, axes, perm, **_):
        order = list(perm.as_ints())
        (unit,) = axes_of(axes, len(order))
        inner = [p - (p > unit) for p in order if p != unit]
        at = np.array([order.index(unit)], dtype=np.int64)
        return op.Unsqueeze(op.Transpose(x, perm=inner), op.Constant(value=ir.tensor(at)))


class Conv2DOfUnitHeightIsConv1D(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, w, axes_in, axes_out):
        unsqueezed = op.Unsqueeze(x, axes_in, _outputs=["unsqueezed"])
        return op.Squeeze(op.Conv(unsqueezed, w, _allow_other_inputs=True, _outputs=["conv_out"]), axes_out)

    def check(self, context, x, w, axes_in, axes_out, unsqueezed, conv_out, **_) -> bool:
        weight = get_numpy_value(w)
        if weight is None or weight.ndim != 4 or not single_use(unsqueezed, conv_out):
            return False
        conv = conv_out.producer()
        attrs = {k: a.value for k, a in conv.attributes.items()}
        if weight.shape[2] != 1 or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            return False
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        # a unit-height axis 2 in, the same axis out, and nothing done along it
        return (
            axes_of(axes_in, 4) == [2] and axes_of(axes_out, 4) == [2] and pads[0] == pads[2] == 0
            and list(attrs.get("kernel_shape", [1, weight.shape[3]]))[0] == 1
        )

    def rewrite(self, op, x, w, axes_in, axes_out, conv_out, **_):
        conv = conv_out.producer()
        attrs = {k: list(a.value) if k != "group" else a.value for k, a in conv.attributes.items() if k != "auto_pad"}
        one_d = {k: v[1:] for k, v in attrs.items() if k in ("kernel_shape", "strides", "dilations")}
        if "pads" in attrs:
            one_d["pads"] = [attrs["pads"][1], attrs["pads"][3]]
        if "group" in attrs:
            one_d["group"] = attrs["group"]
        weight = get_numpy_value(w)[:, :, 0, :]
        w1 = op.initializer(ir.tensor(np.ascontiguousarray(weight)), name=f"{w.name}_1d")
        return op.Conv(x, w1, *conv.inputs[2:], _name=conv.name or None, **one_d)


class PerChannelAddIsConvBias(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, w, c):
        return op.Add(op.Conv(x, w, _allow_other_inputs=True, _outputs=["conv_out"]), c)

    def check(self, context, x, w, c, conv_out, **_) -> bool:
        weight, added = get_numpy_value(w), get_numpy_value(c)
        if weight is None or added is None or not single_use(conv_out):
            return False
        bias = conv_out.producer().inputs[2] if len(conv_out.producer().inputs) > 2 else None
        if bias is not None and get_numpy_value(bias) is None:
            return False
        # the constant must broadcast along the channel axis (1) only
        shape = (1,) * (weight.ndim - added.ndim) + added.shape
        return len(shape) == weight.ndim and shape[1] in (1, weight.shape[0]) and added.size == shape[1]

    def rewrite(self, op, x, w, c, conv_out, **_):
        conv = conv_out.producer()
        channels = get_numpy_value(w).shape[0]
        old = conv.inputs[2] if len(conv.inputs) > 2 else None
        total = np.broadcast_to(get_numpy_value(c).reshape(-1), (channels,)).astype(np.float32)
        if old is not None:
            total = get_numpy_value(old).astype(np.float32) + total
        b = op.initializer(ir.tensor(np.ascontiguousarray(total)), name=f"{conv_out.name}_bias")
        return op.Conv(x, w, b, _name=conv.name or None, **dict(conv.attributes))


RULES = pattern.RewriteRuleSet(
    [UnsqueezeBeforeTranspose.rule(), Conv2DOfUnitHeightIsConv1D.rule(), PerChannelAddIsConvBias.rule()]
)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    return apply_rules(model, RULES, "Conv1D rewritten as a 1-D Conv / bias Add folded", {"Transpose", "Squeeze", "Add"})
