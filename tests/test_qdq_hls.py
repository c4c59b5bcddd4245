"""QDQ through hls4ml: a QuantizeLinear/DequantizeLinear graph with per-channel power-of-2 weight scales converts with
no precision file, and C-sim is bit-exact fused vs unfused with every pair's ReLU in the write-back. One compile
pair by default; the zero-point (Clip) and float-scale forms are slow."""

from __future__ import annotations

import numpy as np
import pytest

import hls_backend
from onnx_fuse.fusion import fuse
from onnx_fuse.normalise import normalise
from onnx_fuse.verify import run_onnx
from conftest import MODELS
from qdq_graphs import qdq_cnn
from test_hls_backend import assert_fused_design, csim_pair
from test_qdq import ties

pytestmark = pytest.mark.hls

CASES = [
    # slow: hls4ml gets the same Quant nodes as from QKeras (per-channel power-of-2 weight scales), compiled by
    # default in tests/test_qkeras_alpha.py; the QDQ-to-Quant rewrite is checked against onnxruntime by default
    pytest.param({}, "io_stream", 2, id="per-axis po2", marks=pytest.mark.slow),
    pytest.param(
        {"input_zero_point": 37, "input_type": np.uint8}, "io_parallel", 2, id="zero point 37", marks=pytest.mark.slow
    ),
    pytest.param({"po2": False}, "io_stream", 0, id="per-axis float scales", marks=pytest.mark.slow),
    pytest.param(
        {"po2": False, "per_axis": False, "input_zero_point": -5},
        "io_stream",
        0,
        id="float scales",
        marks=pytest.mark.slow,
    ),
]


def test_per_channel_float_weight_scales_reach_hls4ml():
    """hls4ml 1.3 cannot move unequal per-channel float weight scales below a conv whose input has a float scale too
    (it crashes, fused and unfused alike): power-of-2 ones are merged into one scale (uniform_scales.py), float ones
    become integer weights and a Mul after the conv (weight_scales.py); the graph hls4ml reads computes what the file
    does. This model was refused before (its C-sim: CASES, "per-axis float scales")."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from hls_backend.preprocess import preprocess

    normalised, _ = normalise(qdq_cnn(po2=False))
    graph, _ = preprocess(normalised)
    consumers = {i: n.op_type for n in graph.graph.node for i in n.input}
    assert all(consumers[n.output[0]] == "Mul" for n in graph.graph.node if n.op_type == "Conv")
    x = ties(4)
    name = normalised.graph.input[0].name
    want = np.concatenate([run_onnx(normalised, {name: xi[None]})[0] for xi in x])
    wrapped = ModelWrapper(graph)
    got = np.concatenate([execute_onnx(wrapped, {graph.graph.input[0].name: xi[None]})[graph.graph.output[0].name]
                          for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    preprocess(normalise(qdq_cnn())[0])  # the power-of-2 per-channel form goes through


@pytest.mark.parametrize("case, io_type, write_back", CASES)
def test_qdq_bit_exact_fused_unfused_without_config(case, io_type, write_back, compiled):
    normalised, _ = normalise(qdq_cnn(**case))
    fused, report = fuse(normalised)
    assert report.pairs == 2
    x = ties(16)
    cfg = hls_backend.config_from_fused_onnx(fused)  # no precision file: the Quant nodes give the types
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    if write_back:  # power-of-2 scales: every ReLU in the write-back, and the design computes the model
        assert_fused_design(got.output_dir, ref.output_dir, write_back, io_type)
        # the float biases take hls4ml's default type, so close to onnxruntime, not equal
        expected = run_onnx(normalised, {normalised.graph.input[0].name: x})[0]
        assert np.abs(got.y.reshape(expected.shape) - expected).max() <= 0.05 * np.abs(expected).max()
    # Float scales: hls4ml's ApplyAlpha layers in its default types put C-sim far from onnxruntime (max err 2410 on
    # outputs up to 2478, measured); only fused == unfused is claimed for them.


def bit_exact_hls_out(model: str, tmp_path, capsys) -> str:
    """The CLI's summary of `--hls-out` on a bundled QDQ model with the digits' parity inputs, after checking that it
    succeeded and that C-sim was fused == unfused bit for bit on all 116 inputs."""
    from onnx_fuse.cli import main

    code = main([str(MODELS / model), str(tmp_path / "out.onnx"), "--data", str(MODELS / "digits_cnn_qdq.npz"),
                 "--hls-out", str(tmp_path / "hls"), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hls4ml C-sim fused vs unfused: bit-exact on 116 inputs" in out
    return out


@pytest.mark.slow
def test_quantize_static_per_tensor_through_hls_fused_equals_unfused(tmp_path, capsys):
    """onnxruntime's static quantization with per-tensor (float) weight scales through --hls-out: converts with no
    config (float scales become hls4ml ApplyAlpha layers), fused == unfused bit for bit."""
    out = bit_exact_hls_out("digits_cnn_qdq_per_tensor.onnx", tmp_path, capsys)
    # each Quant after a producer is two ApplyAlpha stages (scale, rescale): the write-back takes the first only
    # (taking both lost the first: fused != unfused), and the types from the float scales keep it near the model
    assert "hls4ml: 3 scale stages in the write-back too" in out and "holds Quant_4_scale already" in out
    assert "top-1 agreement 116/116" in out and "warning" not in out


@pytest.mark.slow
def test_quantize_static_per_channel_through_hls_fused_equals_unfused(tmp_path, capsys):
    """onnxruntime's static quantization with per-channel float weight scales (refused before weight_scales.py): each
    layer's scale goes into its write-back, the activation Quant's rescaling ApplyAlpha after it stays a stage (one
    stage per write-back; taking it too once overwrote the first, 0.101 off the unfused design), fused == unfused."""
    out = bit_exact_hls_out("digits_cnn_qdq.onnx", tmp_path, capsys)
    assert ("3 scale stages in the write-back too: Quant_7_scale (applyalpha) into Conv2D_Conv_0, Quant_9_scale "
            "(applyalpha) into Conv2D_Conv_1, Quant_11_scale (applyalpha) into Dense_MatMul_0") in out
    assert out.count("(one epilogue stage per write-back)") == 3
