"""Give a Gemm without a bias (ONNX's optional input C) an explicit zero bias, for qonnx's GemmToMatMul.

Brevitas' `QuantLinear(bias=False)` and PyTorch's `nn.Linear(bias=False)` export `Gemm(A, B)`. qonnx 1.0's
GemmToMatMul (hls4ml's recipe) reads `input[2]` unconditionally and fails with an IndexError. A zero C of the
output width makes it write MatMul -> Mul(alpha) -> Add(0); the result is unchanged (x + 0 == x exactly in float and
in every fixed-point type), and hls4ml folds the Add into the Dense as a zero bias.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


class ZeroBiasForGemm(Transformation):
    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            if node.op_type != "Gemm" or node.domain != "" or (len(node.input) > 2 and node.input[2]):
                continue
            shape = model.get_tensor_shape(node.input[1])
            if shape is None or len(shape) != 2:
                continue  # GemmToMatMul reports it; without B's shape there is no output width
            trans_b = get_by_name(node.attribute, "transB")
            width = shape[0] if trans_b is not None and trans_b.i else shape[1]
            name = model.make_new_valueinfo_name()
            model.set_initializer(name, np.zeros(width, dtype=np.float32))
            del node.input[2:]
            node.input.append(name)
            changed = True
        return model, changed
