"""Take a BatchNormalization out of a Transpose or Unsqueeze/Squeeze sandwich, so it follows its Conv or Gemm directly
and is folded into it (onnxslim for Conv, dense_batchnorm for Gemm); then the Conv/Dense -> Relu pair can fuse.

Exporters write BN on a tensor whose channel axis is not 1 that way (keras2onnx: Transpose -> BN -> Transpose;
PyTorch's BatchNorm1d on (N, C): Unsqueeze -> BN -> Squeeze). No library moves a BN across them (onnxslim and
onnxscript fold only a BN right after its Conv/Gemm), so two rewriter rules do:
- Transpose(BN(Transpose(x, p)), inverse of p)  => BN(x)
- Squeeze(BN(Unsqueeze(x, axes)), the same axes) => BN(x)
They apply when the BN's channel axis is axis 1 of x, or a unit axis (then the one channel's parameters repeat over
x's axis 1: the same affine map on every element). Both are exact.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.normalise.conv1d import axes_of, single_use
from onnx_fuse.normalise.rewrite import apply_rules


def static_dims(value: ir.Value) -> list[int] | None:
    return list(value.shape.numpy()) if value.shape is not None and value.shape.is_static() else None


def parameters_on_x(x: ir.Value, bn: ir.Node, channel_axis: int | None) -> list[np.ndarray] | None:
    """BN's scale, bias, mean, var for a BN applied to x itself, or None when it cannot be. `channel_axis` is the
    axis of x the BN normalised along, None for a unit axis the sandwich inserted."""
    dims = static_dims(x)
    params = [get_numpy_value(v) for v in bn.inputs[1:]]
    training = bn.attributes.get("training_mode")  # training mode normalises with the batch's own statistics
    if dims is None or len(dims) < 2 or len(params) != 4 or any(p is None for p in params) or len(bn.outputs) != 1:
        return None
    if training is not None and training.as_int():
        return None
    if channel_axis == 1:
        return params
    if (channel_axis is not None and dims[channel_axis] != 1) or any(p.size != 1 for p in params):
        return None
    return [np.repeat(p.reshape(1), dims[1]) for p in params]  # one channel: the same affine map everywhere


def bn_on(op, x: ir.Value, bn: ir.Node, channel_axis: int | None):
    if channel_axis == 1:
        inputs = list(bn.inputs[1:])
    else:
        params = parameters_on_x(x, bn, channel_axis)
        inputs = [op.initializer(ir.tensor(p), name=f"{v.name}_on_{x.name}") for p, v in zip(params, bn.inputs[1:])]
    return op.BatchNormalization(x, *inputs, _name=bn.name or None, **dict(bn.attributes))


def unsqueezed_channel(added: list[int]) -> int | None:
    """The x axis that became axis 1 (BN's channel axis) after Unsqueeze inserted the unit axes `added`."""
    return None if 1 in added else 1 - (0 in added)


class BatchNormBetweenTransposes(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, perm_in, perm_out):
        inner = op.Transpose(x, perm=perm_in, _outputs=["turned"])
        normed = op.BatchNormalization(inner, _allow_other_inputs=True, _outputs=["normed"])
        return op.Transpose(normed, perm=perm_out)

    def check(self, context, x, perm_in, perm_out, turned, normed, **_) -> bool:
        p, q = list(perm_in.as_ints()), list(perm_out.as_ints())
        inverse = len(p) == len(q) and [p[i] for i in q] == list(range(len(p)))
        return inverse and single_use(turned, normed) and parameters_on_x(x, normed.producer(), p[1]) is not None

    def rewrite(self, op, x, perm_in, normed, **_):
        return bn_on(op, x, normed.producer(), list(perm_in.as_ints())[1])


class BatchNormBetweenUnsqueezeSqueeze(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, axes_in, axes_out):
        inner = op.Unsqueeze(x, axes_in, _outputs=["grown"])
        normed = op.BatchNormalization(inner, _allow_other_inputs=True, _outputs=["normed"])
        return op.Squeeze(normed, axes_out)

    def check(self, context, x, axes_in, axes_out, grown, normed, **_) -> bool:
        rank = len(static_dims(grown) or [])
        added = axes_of(axes_in, rank) if rank else None
        if not added or axes_of(axes_out, rank) != added or not single_use(grown, normed):
            return False
        return parameters_on_x(x, normed.producer(), unsqueezed_channel(added)) is not None

    def rewrite(self, op, x, axes_in, grown, normed, **_):
        added = axes_of(axes_in, len(static_dims(grown)))
        return bn_on(op, x, normed.producer(), unsqueezed_channel(added))


RULES = pattern.RewriteRuleSet([BatchNormBetweenTransposes.rule(), BatchNormBetweenUnsqueezeSqueeze.rule()])


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(n.op_type == "BatchNormalization" for n in model.graph.node):
        return model, []
    inferred = onnx.shape_inference.infer_shapes(model)  # the rules read static shapes of intermediate tensors
    changed, changes = apply_rules(inferred, RULES, "BatchNormalization moved out of a Transpose/Unsqueeze sandwich")
    return (changed, changes) if changes else (model, [])
