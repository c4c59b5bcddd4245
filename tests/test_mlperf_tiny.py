"""The MLPerf Tiny reference architectures (models/make_mlperf_tiny.py) end to end through the hls path.

For each: ONNX parity ok; every legal Conv/Gemm -> Relu pair fused (counted here, on the normalised graph);
`--hls-out` fused vs unfused C-sim bit-exact with a wide fixed-point type; and the fused C-sim within 0.5% of the
output range of onnxruntime, a tolerance that a design without its ReLUs or with the wrong pooling would miss
(checked on the same inputs: each such variant, run in onnxruntime, lands more than twice the tolerance away).
Compile-heavy: the four networks are marked slow; the small pooling and BatchNormalization checks run by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import MODELS

WIDE = "ap_fixed<32,16>"
REL_TOL = 5e-3  # of max |onnxruntime output|; measured 0.06-0.26% with ap_fixed<32,16>


def legal_pairs(model: onnx.ModelProto) -> int:
    """Conv/Gemm nodes whose only consumer is a Relu and whose output is not a graph output."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    return sum(
        1
        for node in model.graph.node
        if node.op_type in ("Conv", "Gemm")
        and node.output[0] not in outputs
        and [c.op_type for c in consumers.get(node.output[0], [])] == ["Relu"]
    )


def normalised(name: str) -> onnx.ModelProto:
    from onnx_fuse.export import keras_to_onnx
    from onnx_fuse.load import load
    from onnx_fuse.normalise import normalise

    return normalise(keras_to_onnx(load(MODELS / f"{name}.keras").keras_model))[0]


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: xi[None]})[0] for xi in x])


def variant(model: onnx.ModelProto, op_type: str, replacement: str) -> onnx.ModelProto | None:
    """The graph with every `op_type` node turned into `replacement` (same attributes), or None if it has none."""
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    hits = [n for n in changed.graph.node if n.op_type == op_type]
    for node in hits:
        node.op_type = replacement
        if replacement == "Identity":
            del node.attribute[:]
    return changed if hits else None


def end_to_end(name: str, tmp_path: Path) -> dict:
    from onnx_fuse.pipeline import Options, run  # before hls_backend.hls_stage: importing that first is circular

    from hls_backend import config_from_fused_onnx
    from hls_backend.csim import run_csim
    from hls_backend.hls_stage import HlsOptions

    hls = HlsOptions(tmp_path / "hls", precision=WIDE, report=True)
    options = Options(samples=4, data=MODELS / f"{name}.npz", hls=hls)  # few random inputs: C-sim is slow
    result = run(MODELS / f"{name}.keras", tmp_path / f"{name}.onnx", options)
    fused = result.model
    x = np.load(MODELS / f"{name}.npz")["x"]
    expected = ort_run(fused, x)
    got = run_csim(fused, x, tmp_path / "wide", hls_config=config_from_fused_onnx(fused, default_precision=WIDE))
    tol = REL_TOL * float(np.abs(expected).max())
    err = float(np.abs(got.y.reshape(expected.shape) - expected).max())
    norm = normalised(name)
    controls = {}
    for label, (op, other) in {"no ReLU": ("Relu", "Identity"), "max pooling": ("AveragePool", "MaxPool")}.items():
        changed = variant(norm, op, other)
        if changed is not None:
            controls[label] = float(np.abs(ort_run(changed, x) - expected).max())
    report = result.hls.report
    return dict(
        pairs=result.fusion.pairs, legal=legal_pairs(norm), parity=[p.ok for p in result.parity],
        bit_exact=result.hls.bit_exact, fused_in_hls=result.hls.fused_in_hls, err=err, tol=tol, controls=controls,
        processes=(report["unfused"]["processes"], report["fused"]["processes"]),
        streams=(report["unfused"]["streams"], report["fused"]["streams"]),
    )


def check(r: dict, fused_in_hls: int) -> None:
    assert r["parity"] and all(r["parity"]), r
    assert r["pairs"] == r["legal"], r
    assert r["bit_exact"], r
    assert r["fused_in_hls"] == fused_in_hls, r
    # each pair fused in the write-back removes one dataflow process and one FIFO stream
    assert r["processes"][0] - r["processes"][1] == fused_in_hls, r
    assert r["streams"][0] - r["streams"][1] == fused_in_hls, r
    assert r["err"] <= r["tol"], r
    assert all(gap > 2 * r["tol"] for gap in r["controls"].values()), r


@pytest.mark.slow  # three 49x10 designs: minutes of g++; the pooling tests below cover the same code by default
def test_dscnn_end_to_end(tmp_path: Path) -> None:
    """Conv(10x4, stride 2) + 4 depthwise-separable blocks + AveragePool(25x5): 9 pairs, depthwise ones included,
    each with its ReLU in the write-back."""
    r = end_to_end("mlperf_dscnn", tmp_path)
    assert r["pairs"] == 9 and set(r["controls"]) == {"no ReLU", "max pooling"}
    check(r, fused_in_hls=9)


@pytest.mark.slow
def test_resnet8_end_to_end(tmp_path: Path) -> None:
    """Residual Adds (the Conv -> BN -> Add -> Relu tails never fuse) and AveragePool(8): 4 pairs."""
    r = end_to_end("mlperf_resnet8", tmp_path)
    assert r["pairs"] == 4 and set(r["controls"]) == {"no ReLU", "max pooling"}
    check(r, fused_in_hls=4)


@pytest.mark.slow
def test_autoencoder_end_to_end(tmp_path: Path) -> None:
    """Dense -> BN -> ReLU x9: every pair that normalisation makes legal is fused, and each applies its ReLU in the
    Dense write-back."""
    r = end_to_end("mlperf_autoencoder", tmp_path)
    assert r["pairs"] == 9 and set(r["controls"]) == {"no ReLU"}  # BatchNormalization folded into each Dense
    check(r, fused_in_hls=9)


@pytest.mark.slow
def test_mobilenet_end_to_end(tmp_path: Path) -> None:
    """MobileNet-v1 0.25 at 96x96x3: 27 pairs, the 13 depthwise ones included."""
    r = end_to_end("mlperf_mobilenet", tmp_path)
    assert r["pairs"] == 27
    check(r, fused_in_hls=27)


def small_keras(tmp_path: Path, pool) -> Path:
    """Conv -> Relu -> pool -> Dense on a non-square input with more channels than rows or columns, so pooling over
    the wrong axes cannot give the right numbers by accident."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 4, 2))
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    h = keras.layers.Flatten()(pool(h))
    src = tmp_path / "pool.keras"
    keras.Model(inp, keras.layers.Dense(3)(h)).save(src)
    return src


def small_fused(src: Path) -> onnx.ModelProto:
    from onnx_fuse.pipeline import Options, run

    result = run(src, src.with_suffix(".onnx"), Options())
    assert result.fusion.pairs >= 1 and all(p.ok for p in result.parity)
    return result.model


def csim_matches_onnxruntime(fused: onnx.ModelProto, x: np.ndarray, tmp_path: Path) -> None:
    """Fused and unfused C-sim (wide type) bit-exact, within REL_TOL of onnxruntime, and the ReLU-free graph out."""
    from concurrent.futures import ThreadPoolExecutor

    from hls_backend import config_from_fused_onnx
    from hls_backend.csim import run_csim

    cfg = config_from_fused_onnx(fused, default_precision=WIDE)
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {f: pool.submit(run_csim, fused, x, tmp_path / str(f), hls_config=cfg, fuse=f) for f in (True, False)}
    got = {f: job.result().y for f, job in jobs.items()}
    assert np.array_equal(got[True], got[False])
    expected = ort_run(fused, x)
    tol = REL_TOL * np.abs(expected).max()
    err = np.abs(got[True].reshape(expected.shape) - expected).max()
    assert err <= tol, (err, tol)
    no_relu = ort_run(variant(fused_as_plain(fused), "Relu", "Identity"), x)
    assert np.abs(no_relu - expected).max() > 2 * tol


@pytest.mark.slow  # one compile pair; GlobalAveragePool in hls4ml is covered by default by test_torch_hls
def test_global_average_pool_and_batchnorm_after_a_pool_match_onnxruntime(tmp_path: Path) -> None:
    """Two conversions hls4ml 1.3 got wrong, in one design (one pair of compiles):
    - GlobalAveragePool: hls4ml alone averaged the wrong axes; rewritten as a channels-last AveragePool it is right
      (4x3 map with 6 channels, so the wrong axes cannot give the right numbers by accident);
    - a BatchNormalization that does not follow a conv stays Mul + Add with a (1, 1, 1, C) constant after qonnx;
      hls4ml failed on it with "input operand has more dimensions than allowed by the axis remapping"."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((10, 8, 3))
    h = keras.layers.MaxPooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inp))
    h = keras.layers.BatchNormalization(beta_initializer="random_normal", moving_mean_initializer="random_normal",
                                        moving_variance_initializer=keras.initializers.RandomUniform(0.5, 1.5))(h)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", bias_initializer="random_normal")(h)
    src = tmp_path / "pool_bn.keras"
    keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))).save(src)
    fused = small_fused(src)
    ops = [n.op_type for n in fused.graph.node]
    assert "GlobalAveragePool" in ops and "Mul" in ops  # the BN was not folded away
    x = np.random.default_rng(0).uniform(-1, 1, (32, 10, 8, 3)).astype(np.float32)
    csim_matches_onnxruntime(fused, x, tmp_path)


def fused_as_plain(fused: onnx.ModelProto) -> onnx.ModelProto:
    import onnx.inliner

    return onnx.inliner.inline_local_functions(fused)


def test_padded_average_pool_is_refused_on_the_hls_path(tmp_path: Path, capsys) -> None:
    """ONNX's count_include_pad decides how a padded window is averaged; not checked against hls4ml, so refused."""
    import keras

    from onnx_fuse.cli import main

    src = small_keras(tmp_path, keras.layers.AveragePooling2D(3, strides=1, padding="same"))
    out = tmp_path / "pad.onnx"
    code = main([str(src), str(out), "--hls-out", str(tmp_path / "hls"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "not supported on the hls4ml path: AveragePool" in err[0] and "padded average pooling" in err[0], err
    assert not out.exists()
