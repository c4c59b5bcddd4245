"""Drop the leading size-1 dimensions of the constant operand of Mul/Add/Sub/Div, for hls4ml's ApplyAlpha.

hls4ml 1.3 turns `x * c` and `x + c` with a constant c into an ApplyAlpha layer and broadcasts c to the layer's
input shape, which has no batch dimension (merge_const.py, np.broadcast_to). A per-channel constant that keeps the
batch dimension, as qonnx leaves a BatchNormalization that does not follow a conv (Keras exports it as Mul + Add;
e.g. after a pooling layer: c of shape (1, 1, 1, C) on a (1, H, W, C) tensor), has one dimension too many and
numpy fails with "input operand has more dimensions than allowed by the axis remapping" (the fused and the unfused
design alike). A BN right after a conv never gets there: it is folded into the conv.

Dropping leading 1s never changes the result: ONNX broadcasting aligns shapes from the right, and the other
operand already has the full rank, so the output shape stays the same.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

ELEMENTWISE = ("Mul", "Add", "Sub", "Div")


class DropLeadingOnesOfConstants(Transformation):
    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            if node.op_type not in ELEMENTWISE or node.domain != "":
                continue
            for i, name in enumerate(node.input):
                value = model.get_initializer(name)
                other = model.get_tensor_shape(node.input[1 - i]) if len(node.input) == 2 else None
                if value is None or other is None or value.ndim < 2 or value.shape[0] != 1 or len(other) < value.ndim:
                    continue
                keep = next(d for d, size in enumerate(value.shape) if size != 1 or d == value.ndim - 1)
                new_name = f"{name}_rank{value.ndim - keep}"
                # a new initializer: the old one may feed other nodes; cleanup drops it if unused
                model.set_initializer(new_name, np.ascontiguousarray(value.reshape(value.shape[keep:])))
                node.input[i] = new_name
                changed = True
        return model, changed
