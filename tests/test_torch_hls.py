"""PyTorch exports and upsampling models through the hls path: converted by hls4ml 1.3, fused vs unfused C-sim
bit-exact with every fused pair applying its activation in the write-back, and the fused C-sim within REL_TOL of
onnxruntime at ap_fixed<32,16> (the MLPerf Tiny tolerance, test_mlperf_tiny.py).

Default: one compile pair (torch_resblock_dynamo: AdaptiveAvgPool2d(1) as the dynamo exporter's ReduceMean, a
residual Add, Reshape) and hls4ml conversions without compiling; every other model under slow.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import MODELS
from test_torch_exports import TORCH_FILES, ort_run

WIDE = "ap_fixed<32,16>"
REL_TOL = 5e-3  # of max |onnxruntime output|; measured 0.03-0.08% on these models
SAMPLES = 8  # C-sim inputs per model (of the 16 in each .npz): g++ C-sim is slow
KERAS_UPSAMPLING = ["conv_autoencoder_up2d.keras", "conv_autoencoder_up1d.keras"]


def fused_model(name: str, tmp_path: Path) -> tuple[onnx.ModelProto, int, np.ndarray]:
    from onnx_fuse.pipeline import Options, run

    stem = name.rsplit("_", 1)[0] if name.startswith("torch_") else name.removesuffix(".keras")
    result = run(MODELS / name, tmp_path / "fused.onnx", Options(data=MODELS / f"{stem}.npz"))
    assert all(p.ok for p in result.parity)
    return result.model, result.fusion.pairs, np.load(MODELS / f"{stem}.npz")["x"][:SAMPLES]


def csim_pair(name: str, tmp_path: Path) -> dict:
    """Fused and unfused C-sim (one config, wide type) side by side, and onnxruntime on the same inputs."""
    from hls_backend import config_from_fused_onnx
    from hls_backend.csim import run_csim
    from hls_backend.hls_stage import fused_in_write_back

    fused, pairs, x = fused_model(name, tmp_path)
    cfg = config_from_fused_onnx(fused, default_precision=WIDE)
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {f: pool.submit(run_csim, fused, x, tmp_path / str(f), hls_config=cfg, fuse=f) for f in (True, False)}
    got = {f: job.result() for f, job in jobs.items()}
    expected = ort_run(fused, x)
    y = got[True].y.reshape(expected.shape)
    return dict(pairs=pairs, in_write_back=fused_in_write_back(got[True].output_dir),
                bit_exact=np.array_equal(got[True].y, got[False].y),
                err=float(np.abs(y - expected).max()), tol=REL_TOL * float(np.abs(expected).max()))


def check(r: dict) -> None:
    assert r["bit_exact"], r
    assert r["pairs"] >= 1 and r["in_write_back"] == r["pairs"], r
    assert r["err"] <= r["tol"], r


@pytest.fixture(scope="module")
def resblock(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return csim_pair("torch_resblock_dynamo.onnx", tmp_path_factory.mktemp("resblock"))


def test_dynamo_adaptive_avg_pool_block_is_bit_exact_and_close_to_onnxruntime(resblock: dict) -> None:
    """The issue's stopper (ReduceMean from AdaptiveAvgPool2d(1)) compiles; 2 pairs in the write-back."""
    check(resblock)
    assert resblock["pairs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TORCH_FILES if n != "torch_resblock_dynamo.onnx"] + KERAS_UPSAMPLING)
def test_model_is_bit_exact_and_close_to_onnxruntime(name: str, tmp_path: Path) -> None:
    check(csim_pair(name, tmp_path))


@pytest.mark.parametrize("name, layers", [
    ("torch_conv1d_ts.onnx", {"Pooling1D"}),           # MaxPool1d, and the 1-D mean as an AveragePool
    ("torch_mbv2_dynamo.onnx", {"Pooling2D", "DepthwiseConv2D", "Merge"}),  # x.mean((2, 3)) without keepdims
    ("torch_upsample_ts.onnx", {"Resize"}),
    ("conv_autoencoder_up1d.keras", {"Resize"}),
    ("torch_stem_dynamo.onnx", {"Dense", "Pooling2D"}),  # Gemm without a bias input
])
def test_hls4ml_converts_the_idioms(name: str, layers: set[str], tmp_path: Path) -> None:
    """hls4ml 1.3 builds its own layers for each idiom (conversion only, no compile)."""
    from hls_backend import convert

    fused, _, _ = fused_model(name, tmp_path)
    graph = convert(fused, output_dir=str(tmp_path / "prj"))
    classes = {layer.class_name for layer in graph.get_layers()}
    assert layers <= classes, classes


@pytest.mark.slow
def test_keras_conv_autoencoder_through_the_cli_is_bit_exact(tmp_path: Path, capsys) -> None:
    """Conv2D-ReLU, MaxPool, UpSampling2D: `--hls-out` builds both designs, bit-exact, 3 of 3 pairs fused."""
    from onnx_fuse.cli import main

    name = "conv_autoencoder_up2d"
    code = main([str(MODELS / f"{name}.keras"), str(tmp_path / "out.onnx"), "--data", str(MODELS / f"{name}.npz"),
                 "--hls-out", str(tmp_path / "hls"), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hls4ml C-sim fused vs unfused: bit-exact" in out and "3 of 3 pairs apply" in out, out


def upsample_model(height: int, width: int, scales: list[float], mode: str = "nearest") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(scales, dtype=np.float32), "scales")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Resize", ["r", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode="asymmetric",
                          nearest_mode="floor")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, int(height * scales[2]), int(width * scales[3])])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("height, width, scales, mode, reason", [
    (4, 6, [1, 1, 2, 2], "nearest", "swaps height and width"),
    (4, 4, [1, 1, 1.5, 1.5], "nearest", "integer upsampling"),
    (4, 4, [1, 1, 2, 2], "linear", "mode linear"),
])
def test_upsampling_hls4ml_would_get_wrong_is_refused_in_one_line(height, width, scales, mode, reason, tmp_path,
                                                                  capsys) -> None:
    from onnx_fuse.cli import main

    src = tmp_path / "up.onnx"
    onnx.save(upsample_model(height, width, scales, mode), str(src))
    out = tmp_path / "out.onnx"
    code = main([str(src), str(out), "--hls-out", str(tmp_path / "hls"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "not supported on the hls4ml path: Resize" in err[0] and reason in err[0], err
    assert not out.exists()


def padded_pool_model() -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool(3, stride 2, pads 1), PyTorch's MaxPool2d(3, 2, padding=1)."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_padded_max_pool_in_io_stream_is_refused_before_compiling(tmp_path: Path, capsys) -> None:
    """PyTorch's MaxPool2d(3, 2, padding=1): hls4ml 1.3's stream pooling asserts in C-sim; refused in one line."""
    from onnx_fuse.cli import main

    src = tmp_path / "pool.onnx"
    onnx.save(padded_pool_model(), str(src))
    code = main([str(src), str(tmp_path / "out.onnx"), "--hls-out", str(tmp_path / "hls"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "MaxPool" in err[0] and "padding" in err[0] and "io_stream" in err[0], err
