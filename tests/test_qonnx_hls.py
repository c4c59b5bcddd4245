"""QONNX (Brevitas) and QKeras models through hls4ml with no precision file: the Quant nodes set every type.

Fused vs unfused C-sim bit-exact, one process and one FIFO fewer per pair, and the fused design bit-exact with the
quantized source itself (Brevitas' or QKeras' stored outputs) for power-of-2 scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import hls_backend
from onnx_fuse.fusion import fuse
from onnx_fuse.load import load_onnx
from onnx_fuse.normalise import normalise
from test_hls_backend import MODELS, assert_fused_design, csim_pair


def brevitas(name: str) -> tuple[onnx.ModelProto, onnx.ModelProto, int, np.ndarray, np.ndarray]:
    """(normalised, fused, pairs, inputs, Brevitas' outputs) of a bundled Brevitas QONNX model."""
    normalised, _ = normalise(load_onnx(MODELS / f"{name}.onnx"))
    fused, report = fuse(normalised)
    data = np.load(MODELS / f"{name}.npz")
    return normalised, fused, report.pairs, data["x"], data["y_brevitas"]


# power-of-2 Quant nodes setting the types with no config are covered by default by the QKeras and QDQ tests
@pytest.mark.slow
@pytest.mark.parametrize("name, io_type", [("digits_qcnn_po2", "io_stream"), ("digits_qcnn_outquant", "io_parallel")])
def test_brevitas_po2_bit_exact_fused_unfused_and_brevitas(name: str, io_type: str, compiled) -> None:
    normalised, fused, pairs, x, y_brevitas = brevitas(name)
    assert pairs == 3  # two conv pairs and the Dense pair
    cfg = hls_backend.config_from_fused_onnx(fused)  # no precision file: the Quant nodes give the types
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type)
    assert np.array_equal(got.y.reshape(y_brevitas.shape), y_brevitas)


def qkeras(name: str) -> tuple[onnx.ModelProto, onnx.ModelProto, int, np.ndarray, np.ndarray]:
    """(normalised, fused, pairs, inputs, QKeras' logits) of a bundled QKeras model, through the CLI's own steps."""
    from onnx_fuse.load import load
    from onnx_fuse.pipeline import export

    normalised, _ = normalise(export(load(MODELS / f"{name}.h5")))
    fused, report = fuse(normalised)
    data = np.load(MODELS / f"{name}.npz")
    return normalised, fused, report.pairs, data["x"], data["y_qkeras"]


@pytest.mark.parametrize(
    "name, io_type, pairs",
    # slow: the QKeras family's default compile is tests/test_qkeras_alpha.py (po2, 'auto_po2' and 'auto' weights)
    [pytest.param("digits_qkeras", "io_stream", 2, marks=pytest.mark.slow),
     pytest.param("tiny2_qkeras", "io_stream", 5, marks=pytest.mark.slow)],
)
def test_qkeras_bit_exact_fused_unfused_and_qkeras(name: str, io_type: str, pairs: int, compiled) -> None:
    """The inputs are on the input type's grid (tiny2: pixel/256, recovered exactly from tb_input_features.dat's 6
    decimals; digits: its own input quantizer's grid), so C-sim can match QKeras bit for bit."""
    normalised, fused, fused_pairs, x, y_qkeras = qkeras(name)
    assert fused_pairs == pairs
    cfg = hls_backend.config_from_fused_onnx(fused, backend="Vitis")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vitis", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type)
    assert np.array_equal(got.y.reshape(y_qkeras.shape), y_qkeras)
    assert (got.y.reshape(y_qkeras.shape).argmax(1) == y_qkeras.argmax(1)).all()


def test_float_scale_epilogue_bit_exact_and_close_to_brevitas(compiled) -> None:
    """Float (non-power-of-2) scales become hls4ml ApplyAlpha layers between producer and ReLU; each goes into the
    write-back with the ReLU (one process and one FIFO fewer for each of the two stages), bit-exact against the
    unfused design: the convs' per-tensor scales through nnet::cast, the Dense's per-channel float bias through the
    layer's own indexed kernel; the logits Dense takes its ApplyAlpha with no activation after it. At the default
    precision, as a user runs it: the scale stages typed from the scales follow Brevitas to float32 rounding (hls4ml's
    own ap_fixed<16,6> gave max abs err 24, top-1 8%), and the accuracy check finds nothing far. The one default
    fused-vs-unfused compile of the epilogue family."""
    from hls_backend import project
    from hls_backend.accuracy import csim_vs_onnx
    from onnx_fuse.verify import run_onnx

    normalised, fused, pairs, x, y_brevitas = brevitas("digits_qcnn_float")
    assert pairs == 3
    cfg = hls_backend.config_from_fused_onnx(fused)
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_stream", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    y = got.y.reshape(y_brevitas.shape)
    assert (y.argmax(1) == y_brevitas.argmax(1)).all() and np.max(np.abs(y - y_brevitas)) < 1e-4  # measured 3.8e-06
    assert not csim_vs_onnx(got.y, run_onnx(fused, {fused.graph.input[0].name: x})[0]).far  # no warning
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    assert params.count("// onnx_fuse: activation in the write-back") == 3
    assert project.absorbed_stages(got.output_dir) == [
        "Quant_6_rescale (applyalpha) into Conv2D_Conv_0", "Quant_7_rescale (applyalpha) into Conv2D_Conv_1",
        "bn_Add_0 (applyalpha) into Dense_MatMul_0", "bn_Add_1 (applyalpha) into Dense_MatMul_1"]
    fused_calls, unfused_calls = project.layer_calls(got.output_dir), project.layer_calls(ref.output_dir)
    assert [c for c in unfused_calls if c not in fused_calls] == [
        ("normalize", "Quant_6_rescale"), ("relu", "Relu_0"), ("normalize", "Quant_7_rescale"), ("relu", "Relu_1"),
        ("normalize", "bn_Add_0"), ("relu", "Relu_2"), ("normalize", "bn_Add_1")]
    # ApplyAlpha and ReLU of each pair, and the logits' ApplyAlpha
    assert len(unfused_calls) - len(fused_calls) == 7
    assert project.stream_count(ref.output_dir) - project.stream_count(got.output_dir) == 7


@pytest.mark.slow
def test_float_scale_epilogue_through_the_cli(tmp_path: Path, capsys) -> None:
    """The summary counts the scale stages in the write-back and --report lists their FIFOs as removed."""
    from onnx_fuse.cli import main

    name = "digits_qcnn_float"
    hls = tmp_path / "hls"
    code = main([str(MODELS / f"{name}.onnx"), str(tmp_path / "f.onnx"), "--data", str(MODELS / f"{name}.npz"),
                 "--hls-out", str(hls), "--report", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fused 2 Conv->Relu pairs" in out and "1 Dense->Relu pair" in out and "bit-exact on 116 inputs" in out
    assert "hls4ml: 3 of 3 pairs apply their activation" in out
    assert ("hls4ml: types from the float scales for scale and bias of 9 ApplyAlpha layers, 4 layers a float-scale "
            "Quant reads") in out
    assert "top-1 agreement 116/116" in out and "warning" not in out
    assert ("hls4ml: 4 scale stages in the write-back too: Quant_6_rescale (applyalpha) into Conv2D_Conv_0, "
            "Quant_7_rescale (applyalpha) into Conv2D_Conv_1, bn_Add_0 (applyalpha) into Dense_MatMul_0, "
            "bn_Add_1 (applyalpha) into Dense_MatMul_1") in out
    assert "keeps its" not in out
    report = (hls / "report.md").read_text()
    for stages in ("Quant_6_rescale + Relu_0", "Quant_7_rescale + Relu_1", "bn_Add_0 + Relu_2"):
        assert report.count(f"removed (fused with {stages})") == 2  # producer -> ApplyAlpha -> ReLU FIFOs
    assert report.count("removed (fused with bn_Add_1)") == 1  # the Dense writes the output port itself now
    assert "| FIFO streams | 18 | 11 | -7 |" in report and "| dataflow processes | 19 | 12 | -7 |" in report


@pytest.mark.slow
def test_float_scale_model_at_an_overflowing_precision_still_warns(tmp_path: Path, capsys) -> None:
    """--precision ap_fixed<16,6> given: it types the scale stages (the summary says the types from the scales are
    not used), the design is far from the model (the rescales round to 0 and the Dense before the last Quant
    reaches 34.3, beyond the type's 32), and the warning fires, with the way out."""
    from onnx_fuse.cli import main

    name = "digits_fs_cnn_pt"
    code = main([str(MODELS / f"{name}.onnx"), str(tmp_path / "f.onnx"), "--data", str(MODELS / f"{name}.npz"),
                 "--hls-out", str(tmp_path / "hls"), "--precision", "ap_fixed<16,6>", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ("hls4ml: types from the float scales not used (scale and bias of 9 ApplyAlpha layers, 4 layers a "
            "float-scale Quant reads): --precision ap_fixed<16,6> types those layers") in out
    warning = next(line for line in out.splitlines() if "hls4ml: warning" in line)
    assert "the design is far from the model" in warning and "--precision 'ap_fixed<17,7>'" in warning
    assert warning.endswith("or leave out --precision: the scale stages then get types from the float scales")


# (model, io_type, pairs with their activation in the write-back, epilogue stages in it, processes fewer): Brevitas'
# default float quantizers. digits_fs_cnn_pt's convs carry a float bias, so their ApplyAlpha is per-channel: the
# io_stream conv kernel indexes it, an io_parallel conv goes through nnet::onnx_fuse_indexed.
FLOAT_SCALE = [
    ("digits_fs_cnn_pt", "io_stream", 3, 4, 7),
    ("digits_fs_cnn_pt", "io_parallel", 3, 4, 7),
    ("digits_fs_mlp", "io_stream", 2, 3, 5),
    ("digits_fs_mlp", "io_parallel", 2, 3, 5),
    ("digits_qcnn_float", "io_parallel", 3, 4, 7),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, io_type, pairs, stages, fewer", FLOAT_SCALE)
def test_float_scale_epilogue_bit_exact(name: str, io_type: str, pairs: int, stages: int, fewer: int, compiled) -> None:
    from hls_backend import project

    normalised, fused, _, x, y_brevitas = brevitas(name)
    cfg = hls_backend.config_from_fused_onnx(fused)  # the default precision, scale stages typed from the scales
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    y = got.y.reshape(y_brevitas.shape)
    assert (y.argmax(1) == y_brevitas.argmax(1)).all() and np.max(np.abs(y - y_brevitas)) < 1e-4
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    assert params.count("// onnx_fuse: activation in the write-back") == pairs
    assert len(project.absorbed_stages(got.output_dir)) == stages
    assert len(project.layer_calls(ref.output_dir)) - len(project.layer_calls(got.output_dir)) == fewer
    if io_type == "io_stream":
        assert project.stream_count(ref.output_dir) - project.stream_count(got.output_dir) == fewer


@pytest.mark.slow
def test_float_scale_epilogue_vitis_io_stream(compiled) -> None:
    """Vitis' own io_stream Dense calls dense_latency directly, not its config's kernel: a per-channel ApplyAlpha
    stays a stage after a Dense there (fused != unfused before), while the convs' mult kernels take theirs."""
    from hls_backend import project

    normalised, fused, _, x, _ = brevitas("digits_fs_cnn_pt")
    cfg = hls_backend.config_from_fused_onnx(fused, backend="Vitis")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vitis", io_type="io_stream", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert project.absorbed_stages(got.output_dir) == [
        "Quant_0_rescale (applyalpha) into Conv2D_Conv_0", "Quant_1_rescale (applyalpha) into Conv2D_Conv_1"]
    assert len(project.layer_calls(ref.output_dir)) - len(project.layer_calls(got.output_dir)) == 4


def qonnx_model(nodes: list, inits: list, x_shape: list[int], y_shape: list[int]) -> onnx.ModelProto:
    """A QONNX model x -> nodes -> y, its Quant nodes runnable (onnx_fuse.qonnx_ops.prepare)."""
    from onnx import TensorProto, helper

    from onnx_fuse.qonnx_ops import QONNX_DOMAIN, prepare

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    model.ir_version = 8
    return prepare(model)


def float_scale_leaky_clip() -> onnx.ModelProto:
    """Quant(x) -> Conv(Quant(W)) -> LeakyRelu(0.1) -> Flatten -> Gemm(Quant(W2), b) -> Clip(0, 6), every Quant scale
    a float (not a power of 2): the other table activations after an ApplyAlpha (per-tensor on the conv, per-channel
    on the Dense, whose float bias joins its ApplyAlpha)."""
    from onnx import helper, numpy_helper

    from onnx_fuse.qonnx_ops import QONNX_DOMAIN

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in {
        "W": rng.standard_normal((4, 1, 3, 3)), "W2": rng.standard_normal((5, 4 * 8 * 8)) * 0.2,
        "b2": rng.standard_normal(5), "sx": 0.0173, "sw": 0.0219, "sw2": 0.00731, "z": 0.0, "b8": 8.0,
        "lo": 0.0, "hi": 6.0,
    }.items()]
    quant = dict(domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND")
    nodes = [
        helper.make_node("Quant", ["x", "sx", "z", "b8"], ["qx"], **quant),
        helper.make_node("Quant", ["W", "sw", "z", "b8"], ["qW"], **quant),
        helper.make_node("Conv", ["qx", "qW"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["l"], alpha=0.1),
        helper.make_node("Flatten", ["l"], ["f"]),
        helper.make_node("Quant", ["W2", "sw2", "z", "b8"], ["qW2"], **quant),
        helper.make_node("Gemm", ["f", "qW2", "b2"], ["g"], transB=1),
        helper.make_node("Clip", ["g", "lo", "hi"], ["y"]),
    ]
    return qonnx_model(nodes, inits, [1, 1, 8, 8], [1, 5])


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_stream", "io_parallel"])
def test_float_scale_epilogue_leaky_relu_and_clip(io_type: str, compiled) -> None:
    from hls_backend import project

    normalised, _ = normalise(float_scale_leaky_clip())
    fused, report = fuse(normalised)
    assert report.pairs == 2
    x = (np.random.default_rng(4).integers(-16, 17, (64, 1, 8, 8)) / 16).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused)  # the scale stages typed from the scales
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 10  # not a saturated or zero design
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    assert params.count("// onnx_fuse: activation in the write-back") == 2
    assert len(project.absorbed_stages(got.output_dir)) == 2
    assert len(project.layer_calls(ref.output_dir)) - len(project.layer_calls(got.output_dir)) == 4


def float_bias_conv_pointwise() -> onnx.ModelProto:
    """Quant(x) -> Conv 3x3 (float bias) -> Relu -> Quant -> Conv 1x1 (float bias) -> Relu, float scales: each conv's
    ApplyAlpha is per-channel (its bias / scale), the 1x1 conv is hls4ml's pointwise kernel."""
    from onnx import helper, numpy_helper

    from onnx_fuse.qonnx_ops import QONNX_DOMAIN

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in {
        "W": rng.standard_normal((4, 4, 3, 3)), "b": rng.standard_normal(4), "W2": rng.standard_normal((6, 4, 1, 1)),
        "b2": rng.standard_normal(6), "sx": 0.0173, "sw": 0.0219, "sa": 0.0311, "sw2": 0.0123, "z": 0.0, "b8": 8.0,
    }.items()]
    quant = dict(domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND")
    nodes = [
        helper.make_node("Quant", ["x", "sx", "z", "b8"], ["qx"], **quant),
        helper.make_node("Quant", ["W", "sw", "z", "b8"], ["qW"], **quant),
        helper.make_node("Conv", ["qx", "qW", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Quant", ["r", "sa", "z", "b8"], ["qr"], **quant),
        helper.make_node("Quant", ["W2", "sw2", "z", "b8"], ["qW2"], **quant),
        helper.make_node("Conv", ["qr", "qW2", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["y"]),
    ]
    return qonnx_model(nodes, inits, [1, 4, 6, 6], [1, 6, 6, 6])


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_stream", "io_parallel"])
def test_per_channel_epilogue_in_conv_and_pointwise_write_back(io_type: str, compiled) -> None:
    """Per-channel ApplyAlpha into a plain and a pointwise conv: io_stream through each mult config's own kernel,
    io_parallel through nnet::onnx_fuse_indexed; bit-exact, both pairs with both stages gone."""
    from hls_backend import project

    normalised, _ = normalise(float_bias_conv_pointwise())
    fused, report = fuse(normalised)
    assert report.pairs == 2
    x = (np.random.default_rng(4).integers(-16, 17, (16, 4, 6, 6)) / 16).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<32,8>")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 100
    calls = project.layer_calls(got.output_dir)
    # only the input-side rescales of the two Quant(x) stay; the convs' ApplyAlpha and both ReLUs are gone
    kept = [c for c in calls if c[0] in ("normalize", "relu")]
    assert kept == [("normalize", "Quant_2_scale"), ("normalize", "Quant_3_scale")], calls
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    assert params.count("indexed by output channel") == 2
    assert len(project.layer_calls(ref.output_dir)) - len(calls) == 4


def test_non_po2_dense_bias_is_refused_before_any_build(tmp_path: Path, capsys) -> None:
    """hls4ml 1.3 crashes on a Dense bias quantized with a float scale: one clear line, exit 2, nothing built."""
    from onnx_fuse.cli import main

    out = tmp_path / "f.onnx"
    code = main([str(MODELS / "digits_qcnn_float_qbias.onnx"), str(out), "--hls-out", str(tmp_path / "hls"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "gives a Dense bias a scale that is not a power of 2" in err[0]
    assert not out.exists() and not (tmp_path / "hls").exists()
