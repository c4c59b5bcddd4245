""".tflite input: checked as data, converted with tf2onnx's TFLite converter, checked against TensorFlow's own TFLite
interpreter.

A .tflite file is a flatbuffer: no code runs from it. It can name ops that are code elsewhere, though: custom ops
(a kernel the application registers) and Flex ops (TensorFlow ops run by the Flex delegate). Neither has an ONNX
meaning, so the op table is read first (tf2onnx's generated flatbuffer reader) and such a file is refused in one line
before anything converts it.

An int8 model's parity is one output quantization step: TFLite computes in integers with fixed-point rescaling,
onnxruntime runs tf2onnx's QuantizeLinear / DequantizeLinear graph in float, and the two round a value that sits on
a step boundary differently (measured: at most one step, on the MLPerf Tiny DS-CNN).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.export import OPSET

CUSTOM = 32  # tflite's BuiltinOperator.CUSTOM: the op is named by its custom_code


def check_tflite(path: Path) -> None:
    """Refuse a file that is no TFLite model, or that uses custom or Flex ops, in one line."""
    from tf2onnx.tflite.Model import Model

    data = path.read_bytes()
    try:
        if not Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 file identifier")
        model = Model.GetRootAsModel(data, 0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        custom = sorted({c.CustomCode().decode("utf-8", "replace") for c in codes
                         if max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) == CUSTOM})
    except Exception as exc:  # a damaged flatbuffer: the reader raises IndexError, struct.error, ...
        raise InputError(f"not a valid TFLite file: {path} ({first_line(exc)})") from exc
    flex = [name for name in custom if name.startswith("Flex")]
    if flex:
        raise InputError(f"{path} uses TensorFlow (Flex) ops {', '.join(flex)}, which need TensorFlow's Flex delegate: "
                         "only TFLite builtin ops are supported (convert without SELECT_TF_OPS)")
    if custom:
        raise InputError(f"{path} uses custom TFLite ops {', '.join(custom)}: only TFLite builtin ops are supported")


def tflite_to_onnx(path: Path) -> onnx.ModelProto:
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET)
    return model


def output_steps(model: onnx.ModelProto) -> list[float]:
    """Per graph output, the quantization step of the DequantizeLinear that makes it (0 for a float output)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name: t for t in model.graph.initializer}
    steps = []
    for output in model.graph.output:
        node = producers.get(output.name)
        scale = constants.get(node.input[1]) if node is not None and node.op_type == "DequantizeLinear" else None
        steps.append(float(np.max(numpy_helper.to_array(scale))) if scale is not None else 0.0)
    return steps


def tflite_runner(path: Path) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """TensorFlow's TFLite interpreter on the same inputs, one sample at a time (the file's batch is 1)."""

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        with warnings.catch_warnings():
            # tf.lite.Interpreter warns that it moves to the ai_edge_litert package; it is TensorFlow's own here
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_path=str(path))
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        # tf2onnx names the ONNX inputs after the TFLite tensors
        arrays = [feeds[d["name"]] if d["name"] in feeds else list(feeds.values())[i] for i, d in enumerate(inputs)]
        for detail, array in zip(inputs, arrays):
            interpreter.resize_tensor_input(detail["index"], [1, *array.shape[1:]])
        interpreter.allocate_tensors()
        results: list[list[np.ndarray]] = [[] for _ in outputs]
        for i in range(len(arrays[0]) if arrays else 0):
            for detail, array in zip(inputs, arrays):
                interpreter.set_tensor(detail["index"], array[i : i + 1].astype(detail["dtype"]))
            interpreter.invoke()
            for got, detail in zip(results, outputs):
                got.append(interpreter.get_tensor(detail["index"]).copy())
        return [np.concatenate(r) for r in results]

    return run
