"""Float-scale quantized models on the hls4ml path, ONNX-level and conversion checks (the C-sims are in
test_qonnx_hls.py): the Gemm without a bias that Brevitas' QuantLinear(bias=False) and nn.Linear(bias=False) export,
and the per-channel float weight scales hls4ml 1.3 cannot move by itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hls_backend
from hls_backend.preprocess import preprocess
from onnx_fuse.fusion import fuse
from onnx_fuse.normalise import normalise
from onnx_fuse.qonnx_ops import QONNX_DOMAIN, prepare
from onnx_fuse.verify import session

MODELS = Path(__file__).resolve().parent.parent / "models"


def biasless_mlp() -> onnx.ModelProto:
    """x -> Gemm(x, Quant(W1), transB=1) -> Relu -> Gemm(r, W2): both Gemms without C, as torch exports Linear(bias=False)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "W1"),
        numpy_helper.from_array(np.float32(0.0173), "s"),  # a float (not power-of-2) scale, as Brevitas' default
        numpy_helper.from_array(np.float32(0), "z"),
        numpy_helper.from_array(np.float32(8), "b"),
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("Quant", ["W1", "s", "z", "b"], ["qW1"], domain=QONNX_DOMAIN, signed=1, narrow=1,
                         rounding_mode="ROUND"),
        helper.make_node("Gemm", ["x", "qW1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "W2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes, "biasless", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    model.ir_version = 8
    return prepare(model)


def test_gemm_without_bias_reaches_hls4ml() -> None:
    """qonnx's GemmToMatMul reads a Gemm's third input unconditionally (IndexError without the zero bias); with it
    the graph hls4ml reads computes what the fused file does and converts to two Dense layers."""
    normalised, _ = normalise(biasless_mlp())
    fused, report = fuse(normalised)
    assert report.pairs == 1
    assert [len(n.input) for n in fused.graph.node if n.op_type in ("Gemm", "DenseRelu")] == [2, 2]
    graph, marks = preprocess(fused)
    assert "Gemm" not in {n.op_type for n in graph.graph.node} and list(marks.values()) == ["DenseRelu"]
    x = np.random.default_rng(1).standard_normal((32, 1, 16)).astype(np.float32)
    want = np.concatenate([session(fused).run(None, {"x": xi})[0] for xi in x])
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapped = ModelWrapper(graph)
    got = np.concatenate([execute_onnx(wrapped, {graph.graph.input[0].name: xi})[graph.graph.output[0].name] for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    hls = hls_backend.convert(fused, output_dir="unused", io_type="io_parallel")
    assert [layer.class_name for layer in hls.get_layers()].count("Dense") == 2


@pytest.mark.filterwarnings("ignore:Failed to propagate quantization bias down Add node")
def test_per_channel_float_weight_scales_reach_hls4ml() -> None:
    """Brevitas' Int8WeightPerChannelFloat after a float input scale (digits_fs_cnn_pc): hls4ml 1.3 cannot move such
    scales below a conv (it warns, then crashes with an IndexError in the C-sim child), so this model was refused.
    hls_backend/weight_scales.py gives each conv integer weights and a Mul by its per-channel scale after it: the
    graph hls4ml reads computes what the file does and converts, every Mul an ApplyAlpha."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from onnx_fuse.load import load_onnx

    fused, report = fuse(normalise(load_onnx(MODELS / "digits_fs_cnn_pc.onnx"))[0])
    assert report.pairs == 3
    graph, _ = preprocess(fused)
    consumers = {i: n.op_type for n in graph.graph.node for i in n.input}
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and all(consumers[n.output[0]] == "Mul" and len(n.input) == 2 for n in convs)
    x = np.load(MODELS / "digits_fs_cnn_pc.npz")["x"][:8]
    want = np.concatenate([session(fused).run(None, {fused.graph.input[0].name: xi[None]})[0] for xi in x])
    wrapped = ModelWrapper(graph)
    got = np.concatenate([execute_onnx(wrapped, {graph.graph.input[0].name: xi[None]})[graph.graph.output[0].name]
                          for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    hls = hls_backend.convert(fused, output_dir="unused", io_type="io_stream")
    assert [layer.class_name for layer in hls.get_layers()].count("Conv2D") == 2


# hls4ml 1.3 warns on the Dense's float bias Add, which it then turns into the ApplyAlpha this test is about.
@pytest.mark.filterwarnings("ignore:Failed to propagate quantization bias down Add node")
def test_report_lists_the_applyalpha_fifos_as_removed() -> None:
    """--report's table (from the converted designs, no compile): each producer -> ApplyAlpha -> ReLU chain loses
    both FIFOs, and the logits Dense that took its ApplyAlpha writes the output port itself."""
    from onnx_fuse.load import load_onnx
    from hls_backend.resource_report import comparison_table, design_report

    fused, _ = fuse(normalise(load_onnx(MODELS / "digits_qcnn_float.onnx"))[0])
    cfg = hls_backend.config_from_fused_onnx(fused)
    reports = [design_report(hls_backend.convert(fused, hls_config=cfg, io_type="io_stream", fuse=f))
               for f in (False, True)]
    table = comparison_table(*reports)
    for stages in ("Quant_6_rescale + Relu_0", "Quant_7_rescale + Relu_1", "bn_Add_0 + Relu_2"):
        assert table.count(f"removed (fused with {stages})") == 2, table
    assert table.count("removed (fused with bn_Add_1)") == 1
    assert "| FIFO streams | 18 | 11 | -7 |" in table and "| dataflow processes | 19 | 12 | -7 |" in table


def test_a_quant_with_a_non_zero_zero_point_is_refused_on_the_hls_path():
    """hls4ml 1.3 matches a Quant on its scale alone and would drop the zero point: refused, not built wrong."""
    from hls_backend.preprocess import UnsupportedModelError

    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
             (("scale", 0.25), ("zero_point", 3.0), ("bits", 8.0))]
    graph = helper.make_graph(
        [helper.make_node("Quant", ["x", "scale", "zero_point", "bits"], ["q"], name="q_in",
                          domain="qonnx.custom_op.general", signed=1, narrow=0, rounding_mode="ROUND"),
         helper.make_node("Relu", ["q"], ["y"])],
        "zp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    with pytest.raises(UnsupportedModelError, match="Quant 'q_in' has a non-zero zero point"):
        preprocess(model)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array(0.0, np.float32), "zero_point"))
    preprocess(model)  # zero point 0: converts
