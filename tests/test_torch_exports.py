"""PyTorch exports (models/make_torch_models.py, both torch.onnx exporters) and the idioms hls4ml cannot read as
written: ReduceMean over the spatial axes, tf2onnx's UpSampling chain. ONNX only (the hls side: test_torch_hls.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import MODELS, op_types

# fused pairs per model (counted by hand from make_torch_models.py: every Conv/Linear followed by its activation)
TORCH_PAIRS = {"cnn_bn": 3, "mbv2": 3, "resblock": 2, "conv1d": 2, "mlp": 3, "upsample": 2, "stem": 2}
TORCH_FILES = [f"torch_{name}_{exporter}.onnx" for name in TORCH_PAIRS for exporter in ("dynamo", "ts")]
NOT_FOR_HLS4ML = {"ReduceMean", "Tile", "Unsqueeze", "Squeeze"}


def ort_run(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {session.get_inputs()[0].name: xi[None]})[0] for xi in x])


@pytest.mark.parametrize("name", TORCH_FILES)
def test_torch_export_fuses_with_exact_parity(name: str, tmp_path: Path) -> None:
    """Every legal pair fused, parity ok on PyTorch's own inputs, and nothing hls4ml lacks left in the graph; the
    file itself computes what PyTorch computed (so the parity reference is right)."""
    from onnx_fuse.pipeline import Options, run

    stem = name.rsplit("_", 1)[0]
    data = np.load(MODELS / f"{stem}.npz")
    np.testing.assert_allclose(ort_run(str(MODELS / name), data["x"]), data["y_torch"], atol=1e-5, rtol=1e-5)
    result = run(MODELS / name, tmp_path / "out.onnx", Options(data=MODELS / f"{stem}.npz"))
    assert result.fusion.pairs == TORCH_PAIRS[stem.removeprefix("torch_")]
    assert all(p.ok for p in result.parity) and result.parity[-1].max_abs_err == 0.0
    assert not NOT_FOR_HLS4ML & set(op_types(result.model)), op_types(result.model)


@pytest.mark.parametrize("name", sorted(TORCH_PAIRS))
def test_dynamo_export_keeps_its_weights_next_to_the_file(name: str, tmp_path: Path) -> None:
    """The dynamo exporter's weights live in MODEL.onnx.data; onnx-fuse reads them from there, and the written
    file carries them (it runs on its own, without the .data file)."""
    from onnx_fuse.pipeline import Options, run

    path = MODELS / f"torch_{name}_dynamo.onnx"
    graph_only = onnx.load(str(path), load_external_data=False)
    external = [t for t in graph_only.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    assert external and {t.external_data[0].value for t in external} == {path.name + ".data"}
    out = tmp_path / "out.onnx"
    run(path, out, Options())
    written = onnx.load(str(out))
    assert not [t for t in written.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    x = np.load(MODELS / f"torch_{name}.npz")["x"]
    np.testing.assert_allclose(ort_run(written, x), np.load(MODELS / f"torch_{name}.npz")["y_torch"],
                               atol=1e-5, rtol=1e-5)


def reduce_mean_model(axes: list[int] | None, keepdims: int, opset: int, then_flatten: bool = False,
                      shape: tuple[int, ...] = (1, 3, 4, 5)) -> onnx.ModelProto:
    inputs, inits, attrs = ["x"], [], {"keepdims": keepdims}
    if axes is not None and opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes"))
        inputs.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    nodes = [helper.make_node("ReduceMean", inputs, ["m" if then_flatten else "y"], **attrs)]
    if then_flatten:
        nodes.append(helper.make_node("Flatten", ["m"], ["y"], axis=1))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    "axes, keepdims, opset, flatten, shape",
    [
        ([2, 3], 1, 13, False, (1, 3, 4, 5)),   # AdaptiveAvgPool2d(1), TorchScript-style attribute
        ([2, 3], 0, 18, False, (1, 3, 4, 5)),   # x.mean((2, 3)), dynamo-style axes input
        ([-1, -2], 1, 13, True, (1, 3, 4, 5)),  # negative axes, then Flatten
        ([3, 2], 1, 20, True, (1, 3, 4, 5)),
        ([-1], 1, 13, True, (1, 6, 7)),         # 1-D: x.mean(-1, keepdim=True)
        ([2], 0, 18, False, (1, 6, 7)),
    ],
)
def test_spatial_reduce_mean_becomes_global_average_pool(axes, keepdims, opset, flatten, shape) -> None:
    from onnx_fuse.normalise import reduce_mean

    model = reduce_mean_model(axes, keepdims, opset, flatten, shape)
    out, changes = reduce_mean.apply(model)
    assert changes and "ReduceMean" not in op_types(out) and "GlobalAveragePool" in op_types(out)
    x = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)
    expected, got = ort_run(model, x), ort_run(out, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("axes, shape", [([1], (1, 3, 4, 5)), ([1, 2, 3], (1, 3, 4, 5)), ([2], (1, 3, 4, 5)),
                                          (None, (1, 3, 4, 5)), ([1], (1, 6))])
def test_other_reduce_means_stay(axes, shape) -> None:
    """A mean over channels, over all axes, over one of two spatial axes, or of a 2-D tensor is no pooling."""
    from onnx_fuse.normalise import reduce_mean

    model = reduce_mean_model(axes, 1, 13, shape=shape)
    assert reduce_mean.apply(model)[1] == []


@pytest.mark.parametrize("name, scales", [("conv_autoencoder_up2d", [1, 1, 2, 2]), ("conv_autoencoder_up1d", [1, 1, 3])])
def test_keras_upsampling_becomes_resize(name: str, scales: list[int], tmp_path: Path) -> None:
    """tf2onnx's Unsqueeze/Tile/Transpose/Reshape chain for UpSampling2D / UpSampling1D becomes one nearest Resize
    per layer; exact parity against Keras and onnxruntime."""
    from onnx_fuse.pipeline import Options, run

    result = run(MODELS / f"{name}.keras", tmp_path / "out.onnx", Options(data=MODELS / f"{name}.npz"))
    ops = op_types(result.model)
    assert not NOT_FOR_HLS4ML & set(ops), ops
    resizes = [n for n in result.model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == (2 if "2d" in name else 1)
    consts = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    assert all(consts[n.input[2]].tolist() == scales for n in resizes)
    assert all(p.ok for p in result.parity) and result.parity[-1].max_abs_err == 0.0
    assert result.fusion.pairs == (3 if "2d" in name else 1)


def test_a_tile_that_is_no_upsampling_stays() -> None:
    """Tiling the whole map (x repeated side by side, not each pixel) has the upsampled shape but not its values."""
    from onnx_fuse.normalise import upsampling

    reps = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.int64), "reps")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tile", ["r", "reps"], ["t"]),
         helper.make_node("Relu", ["t"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], [reps])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert upsampling.apply(model)[1] == []
