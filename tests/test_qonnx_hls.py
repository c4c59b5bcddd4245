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
    [("digits_qkeras", "io_stream", 2), pytest.param("tiny2_qkeras", "io_stream", 5, marks=pytest.mark.slow)],
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


def test_float_scale_epilogue_in_the_write_back(tmp_path: Path, capsys) -> None:
    """Float (non-power-of-2) scales become hls4ml ApplyAlpha layers between producer and ReLU; each goes into the
    write-back with the ReLU (one process and one FIFO fewer for each of the two stages), bit-exact against the
    unfused design: the convs' per-tensor scales through nnet::cast, the Dense's per-channel float bias through the
    layer's own indexed kernel; the logits Dense takes its ApplyAlpha with no activation after it. The one default
    fused-vs-unfused compile of the epilogue family, through the CLI with --report."""
    from hls_backend import project
    from onnx_fuse.cli import main

    name = "digits_qcnn_float"
    hls = tmp_path / "hls"
    code = main([str(MODELS / f"{name}.onnx"), str(tmp_path / "f.onnx"), "--data", str(MODELS / f"{name}.npz"),
                 "--hls-out", str(hls), "--report", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fused 2 Conv->Relu pairs" in out and "1 Dense->Relu pair" in out and "bit-exact on 116 inputs" in out
    assert "hls4ml: 3 of 3 pairs apply their activation" in out
    assert ("hls4ml: 4 scale stages in the write-back too: Quant_6_rescale (applyalpha) into Conv2D_Conv_0, "
            "Quant_7_rescale (applyalpha) into Conv2D_Conv_1, bn_Add_0 (applyalpha) into Dense_MatMul_0, "
            "bn_Add_1 (applyalpha) into Dense_MatMul_1") in out
    assert "keeps its" not in out
    fused_calls, unfused_calls = project.layer_calls(hls / "fused"), project.layer_calls(hls / "unfused")
    assert [c for c in unfused_calls if c not in fused_calls] == [
        ("normalize", "Quant_6_rescale"), ("relu", "Relu_0"), ("normalize", "Quant_7_rescale"), ("relu", "Relu_1"),
        ("normalize", "bn_Add_0"), ("relu", "Relu_2"), ("normalize", "bn_Add_1")]
    # ApplyAlpha and ReLU of each pair, and the logits' ApplyAlpha
    assert len(unfused_calls) - len(fused_calls) == 7
    assert project.stream_count(hls / "unfused") - project.stream_count(hls / "fused") == 7
    report = (hls / "report.md").read_text()
    for stages in ("Quant_6_rescale + Relu_0", "Quant_7_rescale + Relu_1", "bn_Add_0 + Relu_2"):
        assert report.count(f"removed (fused with {stages})") == 2  # producer -> ApplyAlpha -> ReLU FIFOs
    assert report.count("removed (fused with bn_Add_1)") == 1  # the Dense writes the output port itself now
    assert "| FIFO streams | 18 | 11 | -7 |" in report and "| dataflow processes | 19 | 12 | -7 |" in report


# (model, io_type, pairs with their activation in the write-back, epilogue stages in it, processes fewer): Brevitas'
# default float quantizers. digits_fs_cnn_pt's convs carry a float bias, so their ApplyAlpha is per-channel: the
# io_parallel conv loops cannot index it (those pairs keep their stages), the io_stream conv kernel can.
FLOAT_SCALE = [
    ("digits_fs_cnn_pt", "io_stream", 3, 4, 7),
    ("digits_fs_cnn_pt", "io_parallel", 1, 2, 3),
    ("digits_fs_mlp", "io_stream", 2, 3, 5),
    ("digits_fs_mlp", "io_parallel", 2, 3, 5),
    ("digits_qcnn_float", "io_parallel", 3, 4, 7),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, io_type, pairs, stages, fewer", FLOAT_SCALE)
def test_float_scale_epilogue_bit_exact(name: str, io_type: str, pairs: int, stages: int, fewer: int, compiled) -> None:
    from hls_backend import project

    normalised, fused, _, x, _ = brevitas(name)
    cfg = hls_backend.config_from_fused_onnx(fused)
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    assert params.count("// onnx_fuse: activation in the write-back") == pairs
    assert len(project.absorbed_stages(got.output_dir)) == stages
    assert len(project.layer_calls(ref.output_dir)) - len(project.layer_calls(got.output_dir)) == fewer
    if io_type == "io_stream":
        assert project.stream_count(ref.output_dir) - project.stream_count(got.output_dir) == fewer


def test_non_po2_dense_bias_is_refused_before_any_build(tmp_path: Path, capsys) -> None:
    """hls4ml 1.3 crashes on a Dense bias quantized with a float scale: one clear line, exit 2, nothing built."""
    from onnx_fuse.cli import main

    out = tmp_path / "f.onnx"
    code = main([str(MODELS / "digits_qcnn_float_qbias.onnx"), str(out), "--hls-out", str(tmp_path / "hls"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "gives a Dense bias a scale that is not a power of 2" in err[0]
    assert not out.exists() and not (tmp_path / "hls").exists()
