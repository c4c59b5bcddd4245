"""Hand-built QDQ graphs (QuantizeLinear -> DequantizeLinear on activations, DequantizeLinear of integer weights), the
form onnxruntime's static quantization writes, with every knob the tests turn: per-tensor or per-axis weight
scales, int8 or uint8 activations, zero points, power-of-2 or float scales."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def qdq_cnn(
    per_axis: bool = True,
    po2: bool = True,
    input_zero_point: int = 0,
    input_type: type = np.int8,
    act_zero_point: int = 0,
    weight_zero_point: int = 0,
    seed: int = 0,
) -> onnx.ModelProto:
    """x (1, 1, 8, 8) -> Q/DQ -> Conv(DQ(W int8)) -> Relu -> Q/DQ (uint8) -> Conv -> Relu -> Q/DQ -> Flatten -> Gemm
    (DQ(W)) -> y (1, 10). Two Conv -> Relu pairs and a Dense tail."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    def scale(value: float, n: int | None = None) -> np.ndarray:
        if n is None:
            return np.array(value if po2 else value * 1.37, np.float32)
        exps = rng.integers(-2, 2, n).astype(np.float32)
        return (value * 2.0**exps * (1 if po2 else rng.uniform(0.8, 1.6, n))).astype(np.float32)

    nodes = []

    def qdq(x: str, name: str, s: np.ndarray, zp: int, kind: type) -> str:
        params = [init(f"{name}_scale", s), init(f"{name}_zp", np.array(zp, kind))]
        nodes.append(helper.make_node("QuantizeLinear", [x, *params], [f"{name}_q"], name=f"{name}_quant"))
        nodes.append(
            helper.make_node("DequantizeLinear", [f"{name}_q", *params], [f"{name}_dq"], name=f"{name}_dequant")
        )
        return f"{name}_dq"

    def weight(name: str, shape: tuple[int, ...], s: float, axis: int) -> str:
        ints = rng.integers(-100, 100, shape).astype(np.int8)
        channels = shape[axis]
        scales = scale(s, channels) if per_axis else scale(s)
        zp = np.full(channels if per_axis else (), weight_zero_point, np.int8)
        attrs = {"axis": axis} if per_axis else {}
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [init(f"{name}_int", ints), init(f"{name}_scale", scales), init(f"{name}_zp", zp)],
                [name],
                name=f"{name}_dequant",
                **attrs,
            )
        )
        return name

    x = qdq("x", "input", scale(1 / 16), input_zero_point, input_type)
    w1 = weight("w1", (4, 1, 3, 3), 1 / 64, 0)
    nodes.append(
        helper.make_node(
            "Conv",
            [x, w1, init("b1", rng.standard_normal(4).astype(np.float32) / 4)],
            ["c1"],
            name="conv1",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        )
    )
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    a1 = qdq("r1", "act1", scale(1 / 8), act_zero_point, np.uint8)
    w2 = weight("w2", (6, 4, 3, 3), 1 / 64, 0)
    nodes.append(
        helper.make_node("Conv", [a1, w2], ["c2"], name="conv2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    )
    nodes.append(helper.make_node("Relu", ["c2"], ["r2"], name="relu2"))
    a2 = qdq("r2", "act2", scale(1 / 8), act_zero_point, np.uint8)
    nodes.append(helper.make_node("Flatten", [a2], ["f"], name="flatten"))
    w3 = weight("w3", (96, 10), 1 / 32, 1)
    nodes.append(helper.make_node("Gemm", ["f", w3, init("b3", np.zeros(10, np.float32))], ["y"], name="dense"))
    graph = helper.make_graph(
        nodes,
        "qdq_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
