"""hls_backend against real hls4ml 1.3 C-simulation (g++, no Vivado needed): fused vs unfused must be bit-exact.

The unfused reference is onnx-fuse's normalised graph converted with the SAME hls4ml config; every C-sim runs in
a child process (hls_backend.run_csim) so a C++ assert cannot take pytest down. C-sim results come from the
session-wide `compiled` fixture (conftest.py), so a model + config + inputs is compiled once per session. The full
backend x io_type x strategy matrix is marked slow (`pytest -m slow`).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

import hls4ml  # noqa: E402,F401  (a hard dependency: a missing hls4ml must fail, not skip)

import hls_backend  # noqa: E402
from hls_backend import project  # noqa: E402
from hls_backend.csim import CsimError, run_csim  # noqa: E402
from onnx_fuse.verify import run_onnx  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"
N_INPUTS = 200  # tiny2 io_stream C-sim costs ~0.13 s per input


@pytest.fixture
def tiny2(keras_graphs) -> tuple[onnx.ModelProto, onnx.ModelProto, int]:
    return keras_graphs("tiny2_float.h5")


@pytest.fixture
def digits(keras_graphs) -> tuple[onnx.ModelProto, onnx.ModelProto, int]:
    return keras_graphs("digits_cnn.h5")


def tiny2_inputs() -> np.ndarray:
    """The model's 100 stored inputs plus random ones, all on the ap_ufixed<8,0> input grid."""
    stored = np.load(MODELS / "tiny2_float.npz")["x"]
    rng = np.random.default_rng(0)
    extra = rng.integers(0, 256, size=(N_INPUTS - len(stored),) + stored.shape[1:]) / 256.0
    return np.concatenate([stored, extra]).astype(np.float32)


def digits_inputs() -> np.ndarray:
    stored = np.load(MODELS / "digits_cnn.npz")["x"]
    rng = np.random.default_rng(1)
    extra = rng.integers(0, 17, size=(N_INPUTS - len(stored),) + stored.shape[1:]) / 16.0
    return np.concatenate([stored, extra]).astype(np.float32)


def tiny2_original_config(fused: onnx.ModelProto, pairs: int, strategy: str = "Resource") -> dict:
    """The 2021 tiny2 project's precisions (its unmodified_tiny2.yml) on the ONNX layer names:
    conv result ap_fixed<9,6>, ReLU result ap_fixed<8,3,AP_RND,AP_SAT> (rounding + saturating), input
    ap_ufixed<8,0>, reuse factor 16384."""
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<8,6>", default_reuse_factor=16384)
    cfg["Model"]["Strategy"] = strategy
    layers = cfg["LayerName"]
    layers["global_in"]["Precision"]["result"] = "ap_ufixed<8,0>"
    for i in range(pairs):
        layers[f"Conv_{i}"]["Precision"].update(
            accum="ap_fixed<14,6>", weight="ap_fixed<8,3>", bias="ap_fixed<8,3>", result="ap_fixed<9,6>"
        )
        layers[f"Conv_{i}"]["ConvImplementation"] = "LineBuffer"
        layers[f"Relu_{i}"]["Precision"]["result"] = "ap_fixed<8,3,AP_RND,AP_SAT>"
    # hls4ml 1.3 does not clamp the reuse factor of a pointwise (1x1) conv: 16384 on n_in=3 selects
    # nnet::DenseResource_rf_gt_nin, which does not exist, and the project fails to compile (fused or not).
    layers["Conv_0"]["ReuseFactor"] = 96
    layers["MatMul_0"]["Precision"].update(
        accum="ap_fixed<12,6>", weight="ap_fixed<8,3>", bias="ap_fixed<8,3>", result="ap_fixed<8,6>"
    )
    return cfg


def without_relus(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every Relu removed (its consumers read the Conv output): a model that lost its ReLUs."""
    model = copy.deepcopy(model)
    graph = model.graph
    relus = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Relu"}
    keep = [n for n in graph.node if n.op_type != "Relu"]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in relus:
                node.input[i] = relus[name]
    for out in graph.output:
        out.name = relus.get(out.name, out.name)
    del graph.node[:]
    graph.node.extend(keep)
    del graph.value_info[:]
    return model


def assert_follows_onnxruntime(
    y: np.ndarray, model: onnx.ModelProto, variant: onnx.ModelProto, x: np.ndarray, tol: float
) -> None:
    """C-sim output `y` within `tol` of onnxruntime on `model`, and that error would catch a lost or wrong
    activation: `variant` (the model with its activations removed or replaced) lands more than 10x the error away
    on most samples."""
    feeds = {model.graph.input[0].name: x}
    expected = run_onnx(model, feeds)[0]
    err = np.abs(y.reshape(expected.shape) - expected).max()
    assert err < tol, err
    plain = run_onnx(variant, feeds)[0]
    assert (np.abs(plain - expected).max(axis=1) > 10 * err).mean() > 0.5


def csim_all(compiled, *jobs: tuple[onnx.ModelProto, np.ndarray, dict]) -> list:
    """Several C-sims side by side: each is its own child process (one g++ each), so the cores share the wait."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(compiled, model, x, **options) for model, x, options in jobs]
        return [f.result() for f in futures]


def csim_pair(compiled, fused, reference, x, **kwargs):
    """Fused and unfused C-sim of one config, side by side."""
    return csim_all(compiled, (fused, x, dict(fuse=True, **kwargs)), (reference, x, dict(fuse=False, **kwargs)))


def assert_fused_design(
    fused_dir: Path, unfused_dir: Path, pairs: int | dict[str, int], io_type: str, unfused_relus: int | None = None,
    stage: str = "relu",
) -> None:
    """No activation stage (nnet::`stage`) left for a fused pair; one process (and in io_stream one FIFO) fewer
    per pair. `pairs` maps each stage to its pairs when a design fuses several activation kinds."""
    stages = pairs if isinstance(pairs, dict) else {stage: pairs}
    total = sum(stages.values())
    fused_calls, unfused_calls = project.layer_calls(fused_dir), project.layer_calls(unfused_dir)
    for name, stage_pairs in stages.items():
        relus = unfused_relus if unfused_relus is not None else stage_pairs
        assert len([c for c in fused_calls if c[0] == name]) == relus - stage_pairs, fused_calls
        assert len([c for c in unfused_calls if c[0] == name]) == relus
    assert len(unfused_calls) - len(fused_calls) == total  # one dataflow process fewer per pair
    if io_type == "io_stream":
        assert project.stream_count(unfused_dir) - project.stream_count(fused_dir) == total  # one FIFO fewer
    params = (fused_dir / "firmware" / "parameters.h").read_text()
    assert params.count("// onnx_fuse: activation in the write-back") == total


def test_register_is_idempotent() -> None:
    hls_backend.register()
    hls_backend.register()
    from hls4ml.model.flow import get_flow

    assert get_flow("vivado:optimize").optimizers.count("onnx_fuse_fuse_activation") == 1


def test_pair_marks_survive_qonnx(tiny2) -> None:
    """Each fused pair's activation is found again after qonnx renamed every node: by its metadata tag, and only
    in the fused file (the unfused graph converts to the same layers with no mark)."""
    from hls_backend.preprocess import preprocess

    normalised, fused, pairs = tiny2
    graph, marks = preprocess(fused)
    plain, no_marks = preprocess(normalised)
    assert marks == {f"Relu_{i}": "ConvRelu" for i in range(pairs)} and no_marks == {}
    assert [n.op_type for n in graph.graph.node] == [n.op_type for n in plain.graph.node]
    producers = {n.output[0]: n.op_type for n in graph.graph.node}
    assert all(producers[n.input[0]] == "Conv" for n in graph.graph.node if n.name in marks)


@pytest.mark.slow  # 2 x 25 s of io_stream C-sim; the default suite covers Resource and AP_RND/AP_SAT types with digits_act1d
def test_tiny2_vivado_stream_resource_bit_exact(tiny2, compiled) -> None:
    """tiny2 with its original rounding/saturating precisions, Vivado io_stream Resource."""
    normalised, fused, pairs = tiny2
    assert pairs == 5
    x = tiny2_inputs()
    cfg = tiny2_original_config(fused, pairs)
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_stream", hls_config=cfg)
    assert got.y.shape == (N_INPUTS, 10)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50  # not a degenerate all-zero / saturated output
    assert_fused_design(got.output_dir, ref.output_dir, pairs, "io_stream")


@pytest.mark.slow  # io_parallel conv write-back: test_activations_hls's digits_act1d pair covers it by default
def test_digits_io_parallel_bit_exact_and_relu_not_lost(digits, compiled) -> None:
    """digits_cnn io_parallel Latency: fused == unfused, and != the same model without ReLUs (a lost ReLU shows)."""
    normalised, fused, pairs = digits
    assert pairs == 2
    x = digits_inputs()
    cfg = hls_backend.config_from_fused_onnx(fused)
    common = dict(backend="Vivado", io_type="io_parallel", hls_config=cfg)
    got, ref, conv_only = csim_all(
        compiled, (fused, x, dict(fuse=True, **common)), (normalised, x, dict(fuse=False, **common)),
        (without_relus(normalised), x, dict(fuse=False, **common)),
    )
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, "io_parallel")
    differs = np.any(got.y != conv_only.y, axis=1)
    assert differs.mean() > 0.5, f"only {differs.sum()} of {len(x)} outputs differ from the ReLU-less model"


@pytest.mark.slow  # test_activations_hls's default digits_act1d pair compares C-sim with onnxruntime the same way
def test_digits_wide_types_match_onnxruntime(digits, compiled) -> None:
    """Bit-exact with the unfused hls4ml model is not enough (both could be wrong the same way): with wide types
    the fused design must also compute what onnxruntime computes on the file."""
    import onnxruntime as ort

    _, fused, _ = digits
    x = digits_inputs()
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<32,16>")
    got = compiled(fused, x, io_type="io_parallel", hls_config=cfg)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(fused.SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {session.get_inputs()[0].name: xi[None]})[0] for xi in x])
    assert np.abs(got.y.reshape(expected.shape) - expected).max() < 1e-2


def small_nchw_model() -> onnx.ModelProto:
    """Hand-made NCHW graph: bias-less Conv -> Relu (fusable), then Conv -> Relu whose Conv output is also a graph
    output (not fusable: onnx-fuse leaves it, and the hls design must keep its ReLU stage)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 2, 3, 3)) * 0.5).astype(np.float32), "W1"),
        numpy_helper.from_array((rng.standard_normal((4, 4, 3, 3)) * 0.5).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B2"),
    ]
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv_a", **attrs),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu_a"),
        helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], name="conv_b", **attrs),
        helper.make_node("Relu", ["c2"], ["y"], name="relu_b"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8]) for n in ("y", "c2")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.slow  # a variant of the Conv -> ReLU family (bias-less, a pair that stays unfused)
def test_biasless_and_unfusable_pair(compiled) -> None:
    from onnx_fuse.fusion import fuse
    from onnx_fuse.normalise import normalise

    normalised, _ = normalise(small_nchw_model())
    fused, report = fuse(normalised)
    assert report.pairs == 1
    x = (np.random.default_rng(2).integers(-64, 64, (N_INPUTS, 2, 8, 8)) / 16).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused)
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_parallel", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, 1, "io_parallel", unfused_relus=2)


def test_csim_failure_is_reported_not_fatal(digits, tmp_path: Path) -> None:
    """A failing child (here: hls4ml rejects the io_type before compiling anything) surfaces as CsimError."""
    _, fused, _ = digits
    with pytest.raises(CsimError, match="exit code"):
        run_csim(fused, np.zeros((2, 8, 8, 1), np.float32), tmp_path / "bad", io_type="io_nonsense")


def digits_rounding_config(fused: onnx.ModelProto, pairs: int, strategy: str) -> dict:
    """digits_cnn with narrow truncating/wrapping conv results and rounding/saturating ReLU results."""
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<16,6>")
    cfg["Model"]["Strategy"] = strategy
    layers = cfg["LayerName"]
    layers["global_in"]["Precision"]["result"] = "ap_ufixed<8,1>"
    for i in range(pairs):
        layers[f"Conv_{i}"]["Precision"].update(
            accum="ap_fixed<18,8>", weight="ap_fixed<8,3>", bias="ap_fixed<8,3>", result="ap_fixed<10,5>"
        )
        layers[f"Relu_{i}"]["Precision"]["result"] = "ap_fixed<8,3,AP_RND,AP_SAT>"
    layers["MatMul_0"]["Precision"].update(weight="ap_fixed<8,3>", bias="ap_fixed<8,3>")
    return cfg


MATRIX = [
    (backend, io_type, strategy)
    for backend in ("Vivado", "Vitis")
    for io_type in ("io_stream", "io_parallel")
    for strategy in ("Latency", "Resource")
]


@pytest.mark.slow
@pytest.mark.parametrize("backend,io_type,strategy", MATRIX)
def test_matrix_bit_exact(tiny2, digits, compiled, backend: str, io_type: str, strategy: str) -> None:
    """io_stream on tiny2 (32x32x3, 5 pairs); io_parallel on digits_cnn (8x8x1, 2 pairs), because hls4ml's
    io_parallel im2col code for tiny2's 32x32 maps takes g++ many minutes."""
    if io_type == "io_stream":
        normalised, fused, pairs = tiny2
        x = tiny2_inputs()
        cfg = tiny2_original_config(fused, pairs, strategy)
        if strategy == "Latency":
            cfg["Model"]["ReuseFactor"] = 1
            cfg["LayerName"]["Conv_0"]["ReuseFactor"] = 1
    else:
        normalised, fused, pairs = digits
        x = digits_inputs()
        cfg = digits_rounding_config(fused, pairs, strategy)
    got, ref = csim_pair(compiled, fused, normalised, x, backend=backend, io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type)


@pytest.mark.slow
@pytest.mark.parametrize("backend,strategy", [(b, s) for b in ("Vivado", "Vitis") for s in ("Latency", "Resource")])
def test_digits_io_stream_bit_exact(digits, compiled, backend: str, strategy: str) -> None:
    normalised, fused, pairs = digits
    cfg = digits_rounding_config(fused, pairs, strategy)
    got, ref = csim_pair(compiled, fused, normalised, digits_inputs(), backend=backend, io_type="io_stream",
                         hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, "io_stream")


@pytest.mark.slow
def test_tiny2_wrapping_types_need_both_casts(tiny2, compiled) -> None:
    """Narrow rounding + WRAPPING conv result, rounding + saturating ReLU result: the pre-ReLU cast wraps, so a
    single cast to the ReLU type would differ; fused must still equal unfused."""
    normalised, fused, pairs = tiny2
    x = tiny2_inputs()
    cfg = tiny2_original_config(fused, pairs)
    for i in range(pairs):
        cfg["LayerName"][f"Conv_{i}"]["Precision"]["result"] = "ap_fixed<7,3,AP_RND_CONV,AP_WRAP>"
        cfg["LayerName"][f"Relu_{i}"]["Precision"]["result"] = "ap_ufixed<6,2,AP_RND,AP_SAT>"
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_stream", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)


@pytest.mark.slow  # by default test_activations_hls's digits_act1d pair takes Conv1D through Resource (io_parallel)
def test_conv1d_io_stream_resource_bit_exact(keras_graphs, compiled) -> None:
    """Keras Conv1D (normalised into a true 1-D Conv by onnx_fuse) through hls4ml's Conv1D path, fused vs unfused,
    with the Resource strategy."""
    normalised, fused, pairs = keras_graphs("digits_conv1d.keras")
    assert pairs == 2
    stored = np.load(MODELS / "digits_conv1d.npz")["x"]
    rng = np.random.default_rng(3)
    x = np.concatenate([stored, rng.integers(0, 17, (N_INPUTS - len(stored), *stored.shape[1:])) / 16.0]).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    cfg["Model"]["Strategy"] = "Resource"
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vitis", io_type="io_stream", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50
    assert_fused_design(got.output_dir, ref.output_dir, pairs, "io_stream")


@pytest.mark.slow
@pytest.mark.parametrize("backend,io_type,strategy", MATRIX)
def test_conv1d_matrix_bit_exact(keras_graphs, compiled, backend: str, io_type: str, strategy: str) -> None:
    normalised, fused, pairs = keras_graphs("digits_conv1d.keras")
    x = (np.random.default_rng(4).integers(0, 17, (N_INPUTS, 8, 8)) / 16.0).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    cfg["Model"]["Strategy"] = strategy
    got, ref = csim_pair(compiled, fused, normalised, x, backend=backend, io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type)


def pointwise_model() -> onnx.ModelProto:
    """1x1 convs (hls4ml's pointwise path) with a Relu each, then a 3x3 conv; NCHW like a PyTorch export."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array((rng.standard_normal((6, 3, 1, 1)) * 0.5).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32) * 0.2, "B1"),
        numpy_helper.from_array((rng.standard_normal((4, 6, 1, 1)) * 0.5).astype(np.float32), "W2"),
    ]
    one = dict(kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1], dilations=[1, 1], group=1)
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], name="pw1", **one),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "W2"], ["c2"], name="pw2", **one),
        helper.make_node("Relu", ["c2"], ["y"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes, "pointwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.slow  # by default test_activations_hls's digits_act1d pair covers a pointwise conv (io_parallel)
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_pointwise_convs_keep_their_relu(compiled, io_type: str) -> None:
    """hls4ml swaps 1x1 convs for its pointwise layers in its own passes: the fused ReLU must survive that."""
    from onnx_fuse.fusion import fuse
    from onnx_fuse.normalise import normalise

    normalised, _ = normalise(pointwise_model())
    fused, report = fuse(normalised)
    assert report.pairs == 2
    x = (np.random.default_rng(6).integers(-32, 32, (N_INPUTS, 3, 6, 6)) / 16).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<10,4,AP_RND,AP_SAT>")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert (got.y == 0).mean() > 0.2  # the last ReLU really clips: a lost ReLU would give negatives
    assert got.y.min() >= 0
    assert_fused_design(got.output_dir, ref.output_dir, 2, io_type)


@pytest.mark.slow  # Dense -> ReLU in the write-back is covered by default by the float-scale epilogue test's Dense
def test_dense_relu_mlp_bit_exact_and_relu_not_lost(keras_graphs, compiled) -> None:
    """digits_mlp (Dense -> ReLU twice): the ReLU moves into the Dense write-back, fused == unfused, and the design
    follows onnxruntime closely enough that the same MLP without ReLUs would show."""
    normalised, fused, pairs = keras_graphs("digits_mlp.h5")
    assert pairs == 2
    stored = np.load(MODELS / "digits_mlp.npz")["x"]
    rng = np.random.default_rng(9)
    x = np.concatenate([stored, rng.integers(0, 17, (N_INPUTS - len(stored), 64)) / 16.0]).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_parallel", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert len(np.unique(got.y)) > 50
    assert_fused_design(got.output_dir, ref.output_dir, pairs, "io_parallel")
    assert_follows_onnxruntime(got.y, normalised, without_relus(normalised), x, tol=0.3)  # outputs reach 19


@pytest.mark.slow
@pytest.mark.parametrize("backend,io_type,strategy", MATRIX)
def test_dense_relu_matrix_bit_exact(keras_graphs, compiled, backend: str, io_type: str, strategy: str) -> None:
    normalised, fused, pairs = keras_graphs("digits_mlp.h5")
    x = (np.random.default_rng(10).integers(0, 17, (N_INPUTS, 64)) / 16.0).astype(np.float32)
    cfg = hls_backend.config_from_fused_onnx(fused, default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    cfg["Model"]["Strategy"] = strategy
    got, ref = csim_pair(compiled, fused, normalised, x, backend=backend, io_type=io_type, hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert_fused_design(got.output_dir, ref.output_dir, pairs, io_type)
