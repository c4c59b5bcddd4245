"""Fold a BatchNormalization after a Dense layer (Gemm) into the Gemm, so Dense -> BN -> Relu becomes Dense -> Relu
and fuses; onnxslim folds BN into Conv but leaves every Gemm form alone.

- BN(Gemm) (PyTorch Linear -> BatchNorm1d; also what batchnorm_sandwich leaves): onnxscript's own rule.
- Mul(Gemm, s) and Add(Gemm, t) with per-column constants (Keras exports BN after Dense as Mul + Add): folded here
  into the Gemm's weights and bias, since onnxscript's affine rules cover only Conv with scalars.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value
from onnxscript.rewriter.rules.common import fuse_batchnorm_into_gemm_rule

from onnx_fuse.normalise.conv1d import single_use
from onnx_fuse.normalise.rewrite import apply_rules


def per_column(value: ir.Value, gemm_out: ir.Value) -> np.ndarray | None:
    """The constant as one value per Gemm output column, or None when it varies along the rows too."""
    array = get_numpy_value(value)
    if array is None or array.ndim > 2 or gemm_out.shape is None or gemm_out.shape.rank() != 2:
        return None
    columns = gemm_out.shape[1]
    if not isinstance(columns, int) or (array.ndim == 2 and array.shape[0] != 1):
        return None
    if array.shape[-1:] not in ((), (1,), (columns,)):
        return None
    return np.broadcast_to(array.reshape(-1), (columns,)).astype(np.float32)


def foldable(gemm_out: ir.Value, c: ir.Value) -> bool:
    gemm = gemm_out.producer()
    constants = [get_numpy_value(v) for v in gemm.inputs[1:]]
    beta = gemm.attributes.get("beta")
    return (
        single_use(gemm_out) and all(a is not None for a in constants) and per_column(c, gemm_out) is not None
        and (beta is None or beta.as_float() == 1.0)
    )


def gemm_with(op, gemm_out: ir.Value, scale: np.ndarray, shift: np.ndarray):
    """The Gemm computing (its output) * scale + shift, per column: weights and bias scaled, shift added."""
    gemm = gemm_out.producer()
    weights = get_numpy_value(gemm.inputs[1])
    trans_b = gemm.attributes.get("transB")
    column_axis = 0 if trans_b is not None and trans_b.as_int() else 1
    scaled = weights * scale.reshape([-1 if i == column_axis else 1 for i in range(2)])
    bias = get_numpy_value(gemm.inputs[2]) if len(gemm.inputs) > 2 and gemm.inputs[2] is not None else 0.0
    name = gemm_out.name
    return op.Gemm(
        gemm.inputs[0],
        op.initializer(ir.tensor(np.ascontiguousarray(scaled, dtype=weights.dtype)), name=f"{name}_w_folded"),
        op.initializer(ir.tensor(np.asarray(bias * scale + shift, dtype=weights.dtype)), name=f"{name}_b_folded"),
        _name=gemm.name or None,
        **dict(gemm.attributes),
    )


class MulAfterGemm(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, s):
        return op.Mul(op.Gemm(x, _allow_other_inputs=True, _outputs=["gemm_out"]), s)

    def check(self, context, x, s, gemm_out, **_) -> bool:
        return foldable(gemm_out, s)

    def rewrite(self, op, x, s, gemm_out, **_):
        scale = per_column(s, gemm_out)
        return gemm_with(op, gemm_out, scale, np.zeros_like(scale))


class AddAfterGemm(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, t):
        return op.Add(op.Gemm(x, _allow_other_inputs=True, _outputs=["gemm_out"]), t)

    def check(self, context, x, t, gemm_out, **_) -> bool:
        return foldable(gemm_out, t)

    def rewrite(self, op, x, t, gemm_out, **_):
        shift = per_column(t, gemm_out)
        return gemm_with(op, gemm_out, np.ones_like(shift), shift)


RULES = pattern.RewriteRuleSet([fuse_batchnorm_into_gemm_rule, MulAfterGemm.rule(), AddAfterGemm.rule()], commute=True)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(n.op_type == "Gemm" for n in model.graph.node):
        return model, []
    inferred = onnx.shape_inference.infer_shapes(model)  # per_column reads the Gemm's output shape
    changed, changes = apply_rules(inferred, RULES, "BatchNormalization (or Mul/Add) after a Gemm folded into it")
    return (changed, changes) if changes else (model, [])
