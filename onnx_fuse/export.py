"""Keras -> ONNX with tf2onnx at a static batch of 1 (the shape hls4ml builds hardware for)."""

from __future__ import annotations

import logging
from typing import Any

import onnx

from onnx_fuse.errors import InputError
from onnx_fuse.errors import first_line

log = logging.getLogger(__name__)

OPSET = 13
# hls4ml reserves the name `input`: rename such an input in the exported graph.
RESERVED_INPUT_NAMES = {"input": "model_input"}


def onnx_input_names(model: Any) -> list[str]:
    names = [tensor.name.split(":")[0] for tensor in model.inputs]
    return [RESERVED_INPUT_NAMES.get(name, name) for name in names]


def keras_to_onnx(model: Any, opset: int = OPSET) -> onnx.ModelProto:
    import tensorflow as tf
    import tf2onnx

    specs = [
        tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, onnx_input_names(model))
    ]
    single = len(specs) == 1
    # from_keras fails on Keras 3 Sequential models; a traced inference function works for all.
    function = tf.function(lambda *xs: model(xs[0] if single else list(xs), training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    except Exception as exc:
        raise InputError(f"tf2onnx cannot export this model: {first_line(exc)}") from exc
    unconverted = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx", "ai.onnx.ml")})
    if unconverted:
        raise InputError(f"tf2onnx left unsupported operations in the graph: {', '.join(unconverted)}")
    log.debug("tf2onnx exported %d nodes at opset %d", len(proto.graph.node), opset)
    return proto
