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


class ConstantAfterGemm(pattern.RewriteRuleClassBase):
    """Mul(Gemm, s) or Add(Gemm, t), s and t per-column constants."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"{op_type}AfterGemm")
        self.op_type = op_type

    def pattern(self, op, x, c):
        return getattr(op, self.op_type)(op.Gemm(x, _allow_other_inputs=True, _outputs=["gemm_out"]), c)

    def check(self, context, x, c, gemm_out, **_) -> bool:
        return foldable(gemm_out, c)

    def rewrite(self, op, x, c, gemm_out, **_):
        values = per_column(c, gemm_out)
        if self.op_type == "Mul":
            return gemm_with(op, gemm_out, values, np.zeros_like(values))
        return gemm_with(op, gemm_out, np.ones_like(values), values)


RULES = pattern.RewriteRuleSet(
    [fuse_batchnorm_into_gemm_rule, ConstantAfterGemm.rule("Mul"), ConstantAfterGemm.rule("Add")], commute=True
)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(n.op_type == "Gemm" for n in model.graph.node):
        return model, []
    inferred = onnx.shape_inference.infer_shapes(model)  # per_column reads the Gemm's output shape
    changed, changes = apply_rules(inferred, RULES, "BatchNormalization (or Mul/Add) after a Gemm folded into it")
    return (changed, changes) if changes else (model, [])
