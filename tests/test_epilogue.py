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
from onnx_fuse.load import load_onnx
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


def holds(precision, values: np.ndarray, exactly: bool) -> bool:
    """Whether an hls4ml fixed-point type holds every value in its range, and exactly or (exactly=False) on a grid
    no coarser than 2^-23 of the largest magnitude."""
    integer = getattr(precision, "integer", precision.width)
    v = np.asarray(values, dtype=np.float64)
    grid = 2.0 ** (integer - precision.width)
    low = -(2.0 ** (integer - 1)) if precision.signed else 0.0
    in_range = np.all((v >= low) & (v < 2.0 ** (integer - precision.signed)))
    on_grid = np.all(v / grid == np.round(v / grid)) if exactly else grid <= 2.0 ** -23 * np.max(np.abs(v))
    return bool(in_range and on_grid)


# hls4ml 1.3 warns while it moves the float scales below the Dense's bias Add (the ApplyAlpha this is about).
@pytest.mark.filterwarnings("ignore:Failed to propagate quantization bias down Add node")
@pytest.mark.parametrize("name", ["digits_fs_cnn_pt", "digits_fs_mlp", "digits_qcnn_float"])
def test_scale_stages_hold_the_float_scales_at_the_default_precision(name: str) -> None:
    """With no precision given, each ApplyAlpha hls4ml makes of a float-scale Quant holds its scale exactly and its
    bias to 24 bits (at hls4ml's ap_fixed<16,6> a conv rescale of 5e-05 is 0 and a 1/scale of 122 wraps), and each layer a Quant reads
    saturates beyond the Quant's range and resolves 15 bits below its step (ap_fixed<16,6> wraps at 32, and the
    Dense before digits_fs_cnn_pt's last Quant reaches 34.3). Conversion only, no compile."""
    from hls4ml.model.types import SaturationMode

    fused, _ = fuse(normalise(load_onnx(MODELS / f"{name}.onnx"))[0])
    cfg = hls_backend.config_from_fused_onnx(fused)  # the default precision, as `--hls-out` with no --precision
    graph = hls_backend.convert(fused, output_dir="unused", io_type="io_parallel", hls_config=cfg, fuse=False)
    stages = [layer for layer in graph.get_layers() if layer.class_name == "ApplyAlpha"]
    assert len(stages) >= 6
    # the config is the next design's too: the conversion (whose QONNX passes replace these entries) left it alone
    assert all("scale" in cfg["LayerName"][layer.name]["Precision"] for layer in stages)
    for layer in stages:
        for array in ("scale", "bias"):  # the scales are float32 scalars: exact; a float bias per channel: 24 bits
            weight = layer.get_weights(array)
            exactly = array == "scale" or not np.any(weight.data_unquantized)
            assert holds(weight.type.precision, weight.data_unquantized, exactly), (layer.name, array)
    readers = [(layer, layer.get_output_nodes()[0]) for layer in graph.get_layers()
               if layer.class_name in ("Input", "Activation") and layer.get_output_nodes()[0].class_name == "ApplyAlpha"]
    assert len(readers) >= 3
    for layer, quant in readers:
        p, q = layer.get_output_variable().type.precision, quant.get_output_variable().type.precision
        top = 2.0 ** (p.integer - p.signed) - 2.0 ** -p.fractional
        assert p.saturation_mode == SaturationMode.SAT, (layer.name, p)
        scale = np.max(np.abs(quant.get_weights("scale").data_unquantized))
        assert top * scale >= 2.0 ** (q.integer - q.signed), (layer.name, p)  # anything larger saturates the Quant
        assert 2.0 ** -p.fractional * scale <= 2.0 ** -(15 + q.fractional), (layer.name, p)


def test_fixed_type_holds_float32_values_exactly_and_others_to_24_bits() -> None:
    from hls_backend.alpha_types import fixed_type

    assert fixed_type(np.float32([5.1902185e-05])) == "ap_ufixed<22,-14>"  # the float32's own significant bits
    assert fixed_type(np.float32([-0.1746, 0.6762])) == "ap_fixed<25,1>"
    assert fixed_type(np.zeros(4)) == "ap_uint<2>" and fixed_type(np.ones(3)) == "ap_ufixed<2,1>"  # never 1 bit wide
    assert fixed_type(np.array([122.0, -3.5])) == "ap_fixed<9,8>"
    # float64 values, not on any short grid: 24 bits from 2^-3 (0.1 < 2^-3) down, so within 2^-27 of each
    assert fixed_type(np.array([0.1, 1e-9])) == "ap_ufixed<24,-3>"


@pytest.mark.filterwarnings("ignore:Failed to propagate quantization bias down Add node")
def test_precision_and_config_keep_winning_over_the_types_from_the_scales(tmp_path: Path) -> None:
    """--precision types the scale stages itself (as before); a --config entry wins for its layer; the summary line
    says which. Configs only, no compile."""
    from hls_backend.hls_stage import HlsOptions, hls_config, scale_types_line

    fused, _ = fuse(normalise(load_onnx(MODELS / "digits_fs_mlp.onnx"))[0])
    default = HlsOptions(tmp_path)
    cfg = hls_config(fused, default)
    assert cfg["LayerName"]["Quant_1_rescale"]["Precision"]["scale"] == "ap_ufixed<22,-14>"
    assert cfg["LayerName"]["Relu_0"]["Precision"]["result"] == "ap_ufixed<24,3,AP_TRN,AP_SAT>"
    assert scale_types_line(cfg, default) == ("types from the float scales for scale and bias of 6 ApplyAlpha layers, "
                                              "3 layers a float-scale Quant reads")
    wide = HlsOptions(tmp_path, precision="ap_fixed<32,8>")
    cfg = hls_config(fused, wide)
    assert "scale" not in cfg["LayerName"].get("Quant_1_rescale", {}).get("Precision", {})
    assert cfg["LayerName"]["Relu_0"]["Precision"]["result"] == "auto"
    assert scale_types_line(cfg, wide).endswith("--precision ap_fixed<32,8> types those layers")
    yml = tmp_path / "mine.yml"
    yml.write_text("LayerName:\n  Relu_0: {Precision: {result: 'ap_fixed<20,8>'}}\n")
    mine = HlsOptions(tmp_path, config=yml)
    cfg = hls_config(fused, mine)
    assert cfg["LayerName"]["Relu_0"]["Precision"]["result"] == "ap_fixed<20,8>"
    assert cfg["LayerName"]["Quant_1_rescale"]["Precision"]["scale"] == "ap_ufixed<22,-14>"
    assert scale_types_line(cfg, mine).endswith(f"; {yml} sets its own for Relu_0")
    yml.write_text("Model:\n  Precision: {default: 'ap_fixed<24,8>'}\n")
    assert "scale" not in hls_config(fused, mine)["LayerName"].get("Quant_1_rescale", {}).get("Precision", {})
    # a graph without float scales is not converted an extra time and gets no such line
    plain, _ = fuse(normalise(load_onnx(MODELS / "digits_qcnn_po2.onnx"))[0])
    assert scale_types_line(hls_config(plain, default), default) is None
