"""The input ONNX graph as the parity reference: changed only as far as onnxruntime needs to run it one sample at
a time, so the normalised graph is compared with (nearly) the file itself."""

from __future__ import annotations

import onnx

from onnx_fuse.normalise import fixed_batch
from onnx_fuse.normalise.upgrade_opset import RUNNABLE_OPSET, onnx_opset, upgraded


def runnable(model: onnx.ModelProto) -> onnx.ModelProto:
    if onnx_opset(model) < RUNNABLE_OPSET:
        model = upgraded(model, RUNNABLE_OPSET)
    model, _ = fixed_batch.apply(model)  # a fixed batch B > 1 made symbolic: the same function at batch B
    return model
