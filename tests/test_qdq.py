"""QDQ input: QuantizeLinear -> DequantizeLinear (onnxruntime's static quantization, hand-built per-axis / zero-point /
power-of-2 graphs) becomes qonnx Quant, fuses, and computes exactly what onnxruntime computes on the QDQ file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse.cli import main
from onnx_fuse.normalise import normalise, qdq_to_quant
from onnx_fuse.verify import session
from qdq_graphs import qdq_cnn

MODELS = Path(__file__).resolve().parent.parent / "models"
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def run_rows(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = session(model)
    name = model.graph.input[0].name
    return np.concatenate([sess.run(None, {name: row[None]})[0] for row in x])


def ties(n: int = 64, scale: float = 1 / 16, seed: int = 0) -> np.ndarray:
    """Inputs on the half steps of the input quantizer (rounding ties), inside and beyond its range, and noise."""
    rng = np.random.default_rng(seed)
    halves = (rng.integers(-300, 300, (n, 1, 8, 8)) + 0.5) * np.float32(scale)
    noise = rng.standard_normal((n, 1, 8, 8)) * 4
    return np.concatenate([halves, noise]).astype(np.float32)


def test_quantize_static_model_through_the_cli(tmp_path, capsys):
    """onnxruntime's own static quantization (per-channel int8 weights, uint8 activations, int32 biases, float
    scales, a calibrated zero point of 130 on the logits): exact against onnxruntime running the QDQ file."""
    source, out = MODELS / "digits_cnn_qdq.onnx", tmp_path / "fused.onnx"
    assert main([str(source), str(out), "--data", str(MODELS / "digits_cnn_qdq.npz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    parity = {p["name"]: p for p in summary["parity"]}
    assert parity["input onnx vs onnx"]["max_abs_err"] == 0.0 and parity["input onnx vs onnx"]["samples"] == 116
    assert parity["onnx vs fused"]["max_abs_err"] == 0.0
    assert summary["pairs_by_op"] == {"ConvQuantRelu": 2, "DenseQuantClip": 1}
    assert summary["passes"]["qdq_to_quant"] == [
        "3 int32 biases dequantized to float32",
        "QuantizeLinear 'Identity:0_QuantizeLinear': zero point 130 of [0, 255] as a 9-bit zero point 0 clipped to "
        "[-130, 125] steps",
        "21 QuantizeLinear/DequantizeLinear nodes -> 12 qonnx Quant (qonnx QCDQToQuant)",
        "3 Quant nodes that repeat the Quant before them across MaxPool/Transpose/Reshape dropped",
    ]
    fused = onnx.load(str(out))
    assert not QDQ_OPS & {n.op_type for n in fused.graph.node}
    x = np.load(MODELS / "digits_cnn_qdq.npz")["x"]
    # independent of the pipeline: the QDQ file as onnxruntime runs it vs the written file
    np.testing.assert_array_equal(run_rows(fused, x), run_rows(onnx.load(str(source)), x))


CASES = {
    "per-axis po2, int8 input": {},
    "per-tensor po2": {"per_axis": False},
    "uint8 input, zero point 128": {"input_zero_point": 128, "input_type": np.uint8},
    "uint8 input, zero point 37": {"input_zero_point": 37, "input_type": np.uint8},
    "int8 input, zero point -5, float scales": {"input_zero_point": -5, "po2": False},
    "uint8 activations, zero point 3": {"act_zero_point": 3},
    "int8 weights, zero point 5": {"weight_zero_point": 5},
    "per-tensor float scales": {"per_axis": False, "po2": False},
}


@pytest.mark.parametrize("case", CASES)
def test_hand_built_qdq_becomes_quant_exactly(case):
    model = qdq_cnn(**CASES[case])
    converted, reports = normalise(model)
    ops = {n.op_type for n in converted.graph.node}
    assert not ops & QDQ_OPS and "Quant" in ops
    x = ties(scale=float(numpy_helper.to_array(model.graph.initializer[0])))
    np.testing.assert_array_equal(run_rows(converted, x), run_rows(model, x))


def test_qcdq_to_quant_alone_is_not_exact_with_a_runtime_zero_point():
    """The negative control for the zero-point rewrite: qonnx's Quant adds the zero point before rounding, so on
    the tie inputs qonnx's QCDQToQuant alone gives other numbers than onnxruntime's QDQ."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant

    from onnx_fuse import qonnx_ops

    model = qdq_cnn(input_zero_point=37, input_type=np.uint8)
    inferred = onnx.shape_inference.infer_shapes(model)
    qdq_to_quant.constant_value_infos(inferred)
    graph = qdq_to_quant.Graph(inferred)
    qdq_to_quant.per_axis_constants(graph)
    plain = qonnx_ops.prepare(ModelWrapper(inferred).transform(QCDQToQuant()).model)
    x = ties()
    assert not np.array_equal(run_rows(plain, x), run_rows(model, x))
    converted, _ = qdq_to_quant.apply(model)
    np.testing.assert_array_equal(run_rows(converted, x), run_rows(model, x))


def test_po2_qdq_through_the_cli_fuses_every_pair(tmp_path, capsys):
    path = tmp_path / "qdq.onnx"
    onnx.save(qdq_cnn(), str(path))
    np.save(tmp_path / "x.npy", ties(16))
    assert main([str(path), str(tmp_path / "out.onnx"), "--data", str(tmp_path / "x.npy"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs_by_op"] == {"ConvRelu": 2}
    assert all(p["max_abs_err"] == 0.0 for p in summary["parity"])


def single_qdq(
    nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], out_type=TensorProto.FLOAT
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", out_type, [1, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_quantize_without_dequantize_is_refused_in_one_line(tmp_path, capsys):
    """QOperator form: the integer tensor leaves the graph (or feeds QLinear ops): nothing qonnx's Quant expresses."""
    model = single_qdq(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="to_int8")],
        {"s": np.array(0.5, np.float32), "z": np.array(0, np.int8)},
        out_type=TensorProto.INT8,
    )
    path = tmp_path / "qop.onnx"
    onnx.save(model, str(path))
    assert main([str(path), str(tmp_path / "out.onnx"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "onnx-fuse: error: QuantizeLinear 'to_int8' cannot become a qonnx Quant: it is not followed by a "
        "DequantizeLinear with the same scale and zero point (QOperator integer ops?)"
    ]


def test_per_axis_zero_points_on_a_runtime_tensor_are_refused(tmp_path, capsys):
    params = {"s": np.array([0.5, 0.25, 0.5, 1.0], np.float32), "z": np.array([1, 2, 0, 3], np.uint8)}
    model = single_qdq(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="act_quant", axis=1),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="act_dequant", axis=1),
        ],
        params,
    )
    path = tmp_path / "axis.onnx"
    onnx.save(model, str(path))
    assert main([str(path), str(tmp_path / "out.onnx"), "-q"]) == 2
    assert "QuantizeLinear 'act_quant' has per-axis zero points on a runtime tensor" in capsys.readouterr().err
