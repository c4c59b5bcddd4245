"""Write a Dense layer's MatMul (2-D input, constant 2-D weights) as the Gemm it is, so Dense -> Relu can fuse.

tf2onnx emits Gemm for a Dense with a bias and a bare MatMul when the bias is all zeros (also under a QKeras
weight Quant: a bias-less QDense); one spelling keeps the fusion rule single. The Gemm gets an explicit zero bias:
qonnx's GemmToMatMul (hls4ml's recipe) fails on a Gemm without one.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.fusion.rules import is_constant_weight
from onnx_fuse.normalise.rewrite import apply_rules


class ConstantMatMulIsGemm(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, w):
        return op.MatMul(x, w, _outputs=["product"])

    def check(self, context, x: ir.Value, w: ir.Value, **_) -> bool:
        weight = weight_array(w)
        rank = x.shape.rank() if x.shape is not None else None
        return weight is not None and weight.ndim == 2 and rank == 2

    def rewrite(self, op, x, w, product, **_):
        weight = weight_array(w)
        zeros = op.initializer(ir.tensor(np.zeros(weight.shape[1], dtype=weight.dtype)), name=f"{product.name}_bias")
        return op.Gemm(x, w, zeros, _name=product.producer().name or None)


def weight_array(w: ir.Value) -> np.ndarray | None:
    """The constant weight, or the constant a qonnx weight Quant quantizes (same shape); None otherwise."""
    if not is_constant_weight(w):
        return None
    value = get_numpy_value(w)
    return value if value is not None else get_numpy_value(w.producer().inputs[0])


RULES = pattern.RewriteRuleSet([ConstantMatMulIsGemm.rule()])


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    return apply_rules(model, RULES, "MatMul with constant weights written as Gemm", {"MatMul"})
