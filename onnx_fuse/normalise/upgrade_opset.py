"""Upgrade an old ONNX file (opset < 13, as old PyTorch/tf2onnx/keras2onnx exports are) with onnx's version converter.

The passes after this one are written against opset 13, the opset the exporter writes (Unsqueeze/Squeeze axes as
inputs, Gemm with an optional bias); onnxslim crashes on opset 6 graphs. A graph the converter cannot upgrade is
refused with the converter's reason.
"""

from __future__ import annotations

import onnx
from onnx import helper, version_converter

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.export import OPSET

# onnxruntime has no kernels for some ops of opsets below 7 (e.g. Gemm-6)
RUNNABLE_OPSET = 7


def onnx_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)


def upgraded(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """The graph at opset `target`, with an IR version new enough for it."""
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:
        raise InputError(
            f"onnx's version converter cannot upgrade this opset {onnx_opset(model)} graph to {target}: {first_line(exc)}"
        ) from exc
    converted.ir_version = max(converted.ir_version, helper.find_min_ir_version_for(list(converted.opset_import)))
    return converted


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    opset = onnx_opset(model)
    if opset >= OPSET:
        return model, []
    converted = upgraded(model, OPSET)
    return converted, [f"opset {opset} -> {OPSET}, IR {model.ir_version} -> {converted.ir_version}"]
