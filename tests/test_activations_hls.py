"""LeakyReLU and ReLU6 (Clip) in the write-back: the Keras models in models/ through hls4ml C-sim, fused vs unfused
bit-exact, every pair's stage gone, and the design checked against onnxruntime so an activation lost (or computed
wrong) in both designs alike cannot pass. By default one compiled pair covers every activation family:
digits_act1d holds each fused op once. The per-model cases (digits_leaky, digits_mobilenet, both io types) are
`slow`."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

import hls_backend
from hls_backend import project
from onnx_fuse.verify import run_onnx
from conftest import op_types
from test_hls_backend import (
    MODELS, N_INPUTS, assert_follows_onnxruntime, assert_fused_design, csim_pair, without_relus,
)


def digits_like(model: str, seed: int, scale: float) -> np.ndarray:
    """The model's stored digits plus random ones, scaled so that activations reach their interesting range."""
    stored = np.load(MODELS / f"{model}.npz")["x"]
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, 17, (N_INPUTS - len(stored), *stored.shape[1:])) / 16.0
    return (np.concatenate([stored, extra]) * scale).astype(np.float32)


def with_activations_replaced(model: onnx.ModelProto, op: str) -> onnx.ModelProto:
    """The same graph with every `op` node replaced by a plain Relu (Clip -> Relu: no upper bound; LeakyRelu ->
    Relu: no negative slope), to show that the activation under test changes the outputs."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.op_type == op:
            node.op_type = "Relu"
            del node.input[1:]
            del node.attribute[:]
    return copy


CASES = {
    # model file, activation op, nnet stage of the unfused design, pairs, inputs scale, default io type
    "leaky": ("digits_leaky.h5", "LeakyRelu", "leaky_relu", 3, 1.0, "io_parallel"),
    "relu6": ("digits_mobilenet.keras", "Clip", "onnx_fuse_clip", 5, 4.0, "io_stream"),
}


def check_case(name: str, io_type: str, keras_graphs, compiled) -> None:
    path, op, stage, pairs, scale, _ = CASES[name]
    normalised, fused, fused_pairs = keras_graphs(path)
    assert fused_pairs == pairs  # every Conv/Dense -> activation of the model's architecture
    assert sum(n.op_type.endswith(op) for n in fused.graph.node) == pairs and op not in [n.op_type for n in fused.graph.node]
    x = digits_like(path.split(".")[0], 11, scale)
    feeds = {normalised.graph.input[0].name: x}
    assert np.array_equal(run_onnx(fused, feeds)[0], run_onnx(normalised, feeds)[0])  # ORT parity, exact
    # Wide enough to follow onnxruntime closely, rounding + saturating so the two casts of the write-back matter.
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<24,10,AP_RND,AP_SAT>")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type, stage=stage)
    assert_follows_onnxruntime(got.y, normalised, with_activations_replaced(normalised, op), x, tol=2e-2)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_activation_in_write_back_default_io(name: str, keras_graphs, compiled) -> None:
    check_case(name, CASES[name][5], keras_graphs, compiled)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_activation_in_write_back_other_io(name: str, keras_graphs, compiled) -> None:
    check_case(name, "io_stream" if CASES[name][5] == "io_parallel" else "io_parallel", keras_graphs, compiled)


# digits_act1d's fused ops: Conv1D and Dense -> LeakyReLU, depthwise and pointwise (1x1) Conv1D and Dense -> ReLU6,
# Conv1D -> ReLU; and the nnet stage each activation keeps in the unfused design.
ACT1D_PAIRS = {"ConvLeakyRelu": 1, "DenseLeakyRelu": 1, "ConvClip": 2, "DenseClip": 1, "ConvRelu": 1}
ACT1D_STAGES = {"leaky_relu": 2, "onnx_fuse_clip": 3, "relu": 1}
# hls4ml's functions of its conv layers: a plain, a depthwise and a pointwise Conv1D (hls4ml's own pass swaps a 1x1
# conv for its pointwise layer; the fused activation must survive that).
ACT1D_CONVS = {"conv_1d_cl", "depthwise_conv_1d_cl", "pointwise_conv_1d_cl"}


def test_every_activation_in_the_write_back_of_one_design(keras_graphs, compiled) -> None:
    """One compiled pair (Vitis, io_parallel) for every activation family (LeakyReLU and ReLU6 after a conv and
    a Dense, ReLU6 after a depthwise and a pointwise conv, ReLU after a conv), for Keras Conv1D (normalised into a
    true 1-D Conv) through hls4ml's Conv1D path with the Resource strategy, and for the io_parallel conv write-back
    (the other default pairs are io_stream)."""
    normalised, fused, pairs = keras_graphs("digits_act1d.keras")
    assert pairs == 6 and Counter(n.op_type for n in fused.graph.node if n.domain == "onnx_fuse") == ACT1D_PAIRS
    assert not {"LeakyRelu", "Clip", "Relu"} & set(op_types(fused))
    x = digits_like("digits_act1d", 11, 2.0)  # scaled so that ReLU6 clips on most samples
    feeds = {normalised.graph.input[0].name: x}
    assert np.array_equal(run_onnx(fused, feeds)[0], run_onnx(normalised, feeds)[0])  # ORT parity, exact
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<24,10,AP_RND,AP_SAT>")
    cfg["Model"]["Strategy"] = "Resource"
    # hls4ml 1.3 has no Resource DepthwiseConv1D: in io_parallel its C++ asserts, in io_stream it does not compute
    # the graph (6.4 off onnxruntime at that layer, fused and unfused alike). The depthwise conv runs Latency.
    cfg["LayerName"]["Conv_1"]["Strategy"] = "Latency"
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vitis", io_type="io_parallel", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50
    assert_fused_design(got.output_dir, ref.output_dir, ACT1D_STAGES, "io_parallel")
    assert ACT1D_CONVS | {"dense"} <= {c[0] for c in project.layer_calls(got.output_dir)}
    for op in ("LeakyRelu", "Clip"):
        assert_follows_onnxruntime(got.y, normalised, with_activations_replaced(normalised, op), x, tol=2e-2)
    assert_follows_onnxruntime(got.y, normalised, without_relus(normalised), x, tol=2e-2)


def test_register_refuses_an_hls4ml_it_was_not_written_for(monkeypatch) -> None:
    import hls4ml

    from hls_backend.registration import UnsupportedHls4mlError, register

    monkeypatch.setattr(hls4ml, "__version__", "1.4.0")
    with pytest.raises(UnsupportedHls4mlError, match="written for hls4ml 1.3.x, found 1.4.0"):
        register()
