"""Files made before today's tools: Keras-2-era .h5/.keras (made here with tf-keras), architecture JSON + weights,
IR 3 / opset 6-9 ONNX, fixed-batch PyTorch-style exports, BatchNormalization after a Dense in every spelling."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO
from onnx_fuse.cli import main
from onnx_fuse.fusion import fuse
from onnx_fuse.normalise import normalise

RNG = np.random.default_rng(7)


def run_json(args: list[str], capsys) -> dict:
    assert main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_error(args: list[str], capsys) -> str:
    assert main([*map(str, args), "-q"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    return lines[0]


def parity_ok(report: dict) -> None:
    assert [p["ok"] for p in report["parity"]] == [True, True], report["parity"]
    assert report["parity"][1]["max_abs_err"] == 0.0


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


# ---- Keras 2 era, made with tf-keras ----------------------------------------------------------------------------


def keras2_model():
    """Every Keras-2 config Keras 3 rejects in one model: batch_input_shape/input_shape, `groups` on Conv2D,
    SeparableConv2D's Keras-2 kwargs, BatchNormalization after Conv and after Dense."""
    import tf_keras as k

    layers = k.layers
    model = k.Sequential(
        [
            layers.Conv2D(4, 3, input_shape=(8, 8, 3), groups=1),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.SeparableConv2D(4, 3),
            layers.ReLU(),
            layers.DepthwiseConv2D(3),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(8),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(3),
        ]
    )
    rng = np.random.default_rng(7)  # its own: the same weights whatever ran before (docs record its output)
    for weight in model.weights:  # non-trivial BN statistics, so a wrong fold shows
        offset = 1.0 if "variance" in weight.name else 0.0
        weight.assign(rng.standard_normal(weight.shape).astype(np.float32) * 0.3 + offset)
    return model


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keras2")
    model = keras2_model()
    files = {"h5": folder / "old.h5", "keras": folder / "old.keras", "json": folder / "old.json"}
    model.save(files["h5"])
    model.save(files["keras"])
    files["json"].write_text(model.to_json())
    model.save_weights(folder / "old_weights.h5")
    return files


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_keras2_file_loads_through_tf_keras_fuses_and_keeps_parity(kind, keras2_files, tmp_path, capsys):
    report = run_json([keras2_files[kind], tmp_path / "o.onnx", "--samples", "8"], capsys)
    assert report["loader"].startswith("tf-keras 2.")
    # Conv(+BN), pointwise of the separable, depthwise -> 3 ConvRelu; Dense -> BN -> ReLU -> 1 DenseRelu
    assert (report["pairs_by_op"], report["left_unfused"]) == ({"ConvRelu": 3, "DenseRelu": 1}, [])
    assert report["passes"]["dense_batchnorm"]
    parity_ok(report)


def test_summary_names_the_loader_and_keras3s_real_cause(keras2_files, tmp_path, capsys):
    assert main([str(keras2_files["keras"]), str(tmp_path / "o.onnx"), "--samples", "2", "-q"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("  loaded with tf-keras 2.")
    assert "Keras 3 cannot read it: Unrecognized keyword arguments passed to Conv2D: {'batch_input_shape'" in line


def test_architecture_json_finds_its_weights_next_to_it(keras2_files, tmp_path, capsys):
    report = run_json([keras2_files["json"], tmp_path / "o.onnx", "--samples", "8"], capsys)
    assert report["pairs_by_op"] == {"ConvRelu": 3, "DenseRelu": 1}
    parity_ok(report)


def test_keras21_style_sequential_json_loads(keras2_files, tmp_path, capsys):
    """Keras 2.0-2.2 wrote a Sequential config as a bare list of layers, the input shape as the first layer's
    batch_input_shape (hls4ml's example-models are such files); weights given under another name."""
    config = json.loads(keras2_files["json"].read_text())
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    layers[0]["config"]["batch_input_shape"] = [None, 8, 8, 3]
    old = {"class_name": "Sequential", "config": layers, "keras_version": "2.1.6", "backend": "tensorflow"}
    (tmp_path / "KERAS_old.json").write_text(json.dumps(old))
    weights = keras2_files["json"].with_name("old_weights.h5")
    report = run_json([tmp_path / "KERAS_old.json", tmp_path / "o.onnx", "--weights", weights, "--samples", "8"], capsys)
    assert report["loader"].startswith("tf-keras 2.")
    assert (report["pairs_by_op"], report["left_unfused"]) == ({"ConvRelu": 3, "DenseRelu": 1}, [])
    parity_ok(report)


def test_architecture_json_with_weights_option(tmp_path, capsys):
    """A Keras-3-readable pair (Keras 3 Dense -> BN -> ReLU MLP), weights under another name: every pair fuses."""
    import keras

    inp = keras.Input((6,))
    x = inp
    for width in (16, 8, 8):
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(width)(x)))
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    for weight in model.weights:
        weight.assign(RNG.standard_normal(weight.shape).astype(np.float32) * 0.3 + ("variance" in weight.path))
    (tmp_path / "mlp.json").write_text(model.to_json())
    model.save_weights(tmp_path / "params.weights.h5")
    report = run_json([tmp_path / "mlp.json", tmp_path / "o.onnx", "--weights", tmp_path / "params.weights.h5"], capsys)
    assert report["loader"] == "keras 3"
    assert (report["pairs_by_op"], report["left_unfused"]) == ({"DenseRelu": 3}, [])
    parity_ok(report)


def cli_without_tensorflow(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process and report whether TensorFlow got imported."""
    code = textwrap.dedent(
        f"""
        import sys
        from onnx_fuse.cli import main
        code = main({[str(a) for a in args]!r})
        print("tensorflow imported" if "tensorflow" in sys.modules else "tensorflow not imported")
        sys.exit(code)
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_weights_only_h5_refused_before_tensorflow_loads(keras2_files, tmp_path):
    weights = keras2_files["json"].with_name("old_weights.h5")
    result = cli_without_tensorflow([weights, tmp_path / "o.onnx", "-q"])
    assert result.returncode == 2 and result.stdout.strip() == "tensorflow not imported"
    assert result.stderr.strip() == (
        f"onnx-fuse: error: {weights} holds weights only, not a model: give its architecture JSON with it "
        f"(onnx-fuse {keras2_files['json']} OUT.onnx --weights {weights})"
    )


def test_json_without_weights_refused_before_tensorflow_loads(tmp_path):
    (tmp_path / "net.json").write_text(json.dumps({"class_name": "Sequential", "config": {}}))
    result = cli_without_tensorflow([tmp_path / "net.json", tmp_path / "o.onnx", "-q"])
    assert result.returncode == 2 and result.stdout.strip() == "tensorflow not imported"
    assert "give its weights with --weights W.h5 (none found at" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: (d / "a.json").write_text("[1, 2"), "not a Keras architecture JSON"),
        (lambda d: (d / "a.json").write_text('{"layers": []}'), "no class_name/config"),
    ],
)
def test_bad_architecture_json_is_one_line(make, expected, tmp_path, capsys):
    make(tmp_path)
    assert expected in run_error([tmp_path / "a.json", tmp_path / "o.onnx"], capsys)


def test_weights_option_only_with_a_json(keras2_files, tmp_path, capsys):
    line = run_error([keras2_files["h5"], tmp_path / "o.onnx", "--weights", keras2_files["h5"]], capsys)
    assert "--weights goes with an architecture .json" in line


# ---- old ONNX, written with onnx.helper ---------------------------------------------------------------------------


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def floats(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def old_cnn(opset: int, ir: int = 3, batch: int = 1, flatten: list[int] | None = None) -> onnx.ModelProto:
    """A PyTorch-0.4-style CNN: Conv -> Relu -> MaxPool -> Reshape -> Gemm(transB) -> Relu -> Gemm, every
    initializer also a graph input (IR 3 requires it)."""
    gemm = {"transB": 1, **({"broadcast": 1} if opset < 7 else {})}  # Gemm-6 broadcasts C only when told
    inits = [
        init("conv.w", floats(4, 3, 3, 3)), init("conv.b", floats(4)),
        init("shape", np.array(flatten or [batch, -1], dtype=np.int64)),
        init("fc1.w", floats(10, 36)), init("fc1.b", floats(10)),
        init("fc2.w", floats(3, 10)), init("fc2.b", floats(3)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc1.w", "fc1.b"], ["h"], name="fc1", **gemm),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "fc2.w", "fc2.b"], ["y"], name="fc2", **gemm),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])
    model = helper.make_model(
        helper.make_graph(nodes, "old", inputs, [output], inits), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = ir
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def fused_matches_original(original: onnx.ModelProto, fused_file: Path, batch: int) -> None:
    """Independent of the pipeline's own check: the original file run at its own batch vs the fused file per sample."""
    x = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    reference = session(original)
    expected = np.concatenate([reference.run(None, {"x": x[i : i + batch]})[0] for i in range(0, len(x), batch)])
    fused = session(fused_file)
    actual = np.concatenate([fused.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [6, 7, 8, 9])
def test_ir3_onnx_upgrades_normalises_fuses_and_keeps_parity(opset, tmp_path, capsys):
    model = old_cnn(opset)
    out = tmp_path / "o.onnx"
    report = run_json([save(model, tmp_path / "old.onnx"), out], capsys)
    assert report["passes"]["upgrade_opset"] == [f"opset {opset} -> 13, IR 3 -> 7"]
    assert report["passes"]["initializer_inputs"] == ["7 initializers dropped from the graph inputs"]
    assert (report["pairs_by_op"], report["left_unfused"]) == ({"ConvRelu": 1, "DenseRelu": 1}, [])
    parity_ok(report)
    fused = onnx.load(out)
    assert [i.name for i in fused.graph.input] == ["x"] and fused.ir_version >= 7
    if opset >= 7:  # onnxruntime runs opset 7 and newer as they are
        fused_matches_original(model, out, batch=1)


@pytest.mark.parametrize("batch", [4, 789444])
def test_fixed_batch_pytorch_export_is_set_to_one(batch, tmp_path, capsys):
    model = old_cnn(11, ir=6, batch=batch)
    out = tmp_path / "o.onnx"
    report = run_json([save(model, tmp_path / "b.onnx"), out], capsys)
    assert report["passes"]["fixed_batch"] == [
        f"fixed batch {batch} made symbolic (1 Reshape targets freed), samples shown independent"
    ]
    assert report["passes"]["fix_batch"] == ["input 'x': batch 'N' -> 1"]
    assert report["pairs_by_op"] == {"ConvRelu": 1, "DenseRelu": 1}
    parity_ok(report)
    fused = onnx.load(out)
    assert [d.dim_value for d in fused.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]
    if batch == 4:
        fused_matches_original(model, out, batch=4)


def test_fixed_batch_reshape_target_from_a_constant_node(tmp_path, capsys):
    """Exporters also write the target as a Constant node: it is freed the same way."""
    model = old_cnn(11, ir=6, batch=4)
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "shape"))
    model.graph.input.remove(next(i for i in model.graph.input if i.name == "shape"))
    target = helper.make_node("Constant", [], ["shape"], value=init("t", np.array([4, -1], dtype=np.int64)))
    model.graph.node.insert(0, target)
    out = tmp_path / "o.onnx"
    report = run_json([save(model, tmp_path / "c.onnx"), out], capsys)
    assert report["passes"]["fixed_batch"][0].startswith("fixed batch 4 made symbolic (1 Reshape targets freed)")
    parity_ok(report)
    fused_matches_original(model, out, batch=4)


def softmax_over_batch(tmp: Path) -> Path:
    model = old_cnn(11, ir=6, batch=4)
    softmax = helper.make_node("Softmax", ["y0"], ["y"], axis=0)
    model.graph.node[-1].output[0] = "y0"
    model.graph.node.append(softmax)
    return save(model, tmp / "softmax.onnx")


def batch4_graph(tmp: Path, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], rows: int) -> Path:
    graph = helper.make_graph(
        nodes, "b4", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, None])], inits,
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp / "b4.onnx")


def merges_the_batch(tmp: Path) -> Path:
    """Reshape [1, 24] puts the 4 samples in one row."""
    nodes = [helper.make_node("Reshape", ["x", "s"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])]
    return batch4_graph(tmp, nodes, [init("s", np.array([1, 24], dtype=np.int64)), init("w", floats(24, 3))], 1)


def batch_in_a_transposed_reshape(tmp: Path) -> Path:
    """Reshape [4, 6] of the (6, 4) transpose: the 4 there is not the batch."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]), helper.make_node("Reshape", ["t", "s"], ["y"], name="r")
    ]
    return batch4_graph(tmp, nodes, [init("s", np.array([4, 6], dtype=np.int64))], 4)


@pytest.mark.parametrize(
    "make, expected",
    [
        (merges_the_batch, "'y' leads with 1, not the batch 4: the graph does not keep samples apart"),
        (batch_in_a_transposed_reshape, "Reshape 'r' has the batch 4 baked into its target [4, 6] on a tensor that"),
        (softmax_over_batch, "output 'y' mixes samples across the batch (fixed at 4): cannot set the batch to 1"),
    ],
    ids=["reshape-merges-the-batch", "batch-in-a-transposed-reshape", "softmax-over-the-batch"],
)
def test_fixed_batch_that_mixes_samples_is_refused(make, expected, tmp_path, capsys):
    line = run_error([make(tmp_path), tmp_path / "o.onnx"], capsys)
    assert expected in line
    assert not (tmp_path / "o.onnx").exists()


# ---- BatchNormalization after a Dense -----------------------------------------------------------------------------


def dense_bn_relu(between: str) -> onnx.ModelProto:
    """Gemm (or MatMul) -> (a BatchNormalization in one exporter's spelling) -> Relu -> Gemm, batch 1, opset 13."""
    c = 8
    inits = [init("w", floats(5, c)), init("b", floats(c)), init("w2", floats(c, 2)), init("b2", floats(2))]
    one = c if between not in ("transpose-swap",) else 1
    inits += [
        init("scale", floats(one) + 1), init("shift", floats(one)), init("mean", floats(one)),
        init("var", np.abs(floats(one)) + 0.5), init("axes", np.array([2], dtype=np.int64)),
    ]
    bn = lambda x, y: helper.make_node("BatchNormalization", [x, "scale", "shift", "mean", "var"], [y])  # noqa: E731
    middle = {
        "bn": [bn("g", "n")],
        "mul-add": [helper.make_node("Mul", ["g", "scale"], ["m"]), helper.make_node("Add", ["m", "shift"], ["n"])],
        "matmul-mul-add": [  # Keras Dense(use_bias=False) -> BN
            helper.make_node("Mul", ["scale", "g"], ["m"]), helper.make_node("Add", ["m", "shift"], ["n"])
        ],
        "transpose-identity": [
            helper.make_node("Transpose", ["g"], ["t"], perm=[0, 1]), bn("t", "tn"),
            helper.make_node("Transpose", ["tn"], ["n"], perm=[0, 1]),
        ],
        "transpose-swap": [
            helper.make_node("Transpose", ["g"], ["t"], perm=[1, 0]), bn("t", "tn"),
            helper.make_node("Transpose", ["tn"], ["n"], perm=[1, 0]),
        ],
        "unsqueeze-squeeze": [
            helper.make_node("Unsqueeze", ["g", "axes"], ["u"]), bn("u", "un"),
            helper.make_node("Squeeze", ["un", "axes"], ["n"]),
        ],
    }[between]
    dense = (
        [helper.make_node("MatMul", ["x", "w"], ["g"], name="dense")] if between == "matmul-mul-add"
        else [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="dense")]
    )
    nodes = [
        *dense, *middle,
        helper.make_node("Relu", ["n"], ["r"]), helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes, between, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


BETWEEN = ["bn", "mul-add", "matmul-mul-add", "transpose-identity", "transpose-swap", "unsqueeze-squeeze"]


@pytest.mark.parametrize("between", BETWEEN)
def test_batchnorm_after_dense_is_folded_and_the_pair_fuses(between, tmp_path, capsys):
    model = dense_bn_relu(between)
    normalised, _ = normalise(model)
    assert [n.op_type for n in normalised.graph.node] == ["Gemm", "Relu", "Gemm"]
    report = run_json([save(model, tmp_path / "m.onnx"), tmp_path / "o.onnx", "--samples", "32"], capsys)
    assert (report["pairs_by_op"], report["left_unfused"]) == ({"DenseRelu": 1}, [])
    parity_ok(report)
    assert report["parity"][0]["max_abs_err"] < 1e-5


def test_dense_bn_relu_left_unfused_is_listed():
    """BN statistics that are graph inputs cannot be folded: the summary must say so, not hide the pair."""
    model = dense_bn_relu("bn")
    model.graph.input.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, [8]))
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "mean"))
    _, report = fuse(normalise(model)[0])
    assert report.pairs == 0
    assert report.left_unfused == [
        "Gemm 'dense' -> BatchNormalization -> Relu: the BatchNormalization could not be folded into the Gemm"
    ]


def test_convolution_sandwich_is_folded_too(tmp_path, capsys):
    """Conv -> Transpose -> BN -> Transpose -> Relu (keras2onnx's channels-last BN): BN moves next to the Conv,
    onnxslim folds it, the pair fuses."""
    inits = [
        init("w", floats(4, 3, 3, 3)), init("b", floats(4)), init("scale", floats(4) + 1), init("shift", floats(4)),
        init("mean", floats(4)), init("var", np.abs(floats(4)) + 0.5),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 2, 3]),
        helper.make_node("BatchNormalization", ["t", "scale", "shift", "mean", "var"], ["tn"]),
        helper.make_node("Transpose", ["tn"], ["n"], perm=[0, 1, 2, 3]),
        helper.make_node("Relu", ["n"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    report = run_json([save(model, tmp_path / "m.onnx"), tmp_path / "o.onnx"], capsys)
    assert (report["pairs_fused"], report["left_unfused"]) == (1, [])
    parity_ok(report)


def test_keras_error_keeps_the_real_cause_past_the_config_dump(tmp_path, capsys):
    """Neither Keras reads it: the one error line names the cause Keras 3 buries after the layer's whole config."""
    import zipfile

    import keras

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.ReLU()(keras.layers.DepthwiseConv2D(3, name="dw")(inp)))
    good, bad = tmp_path / "good.keras", tmp_path / "bad.keras"
    model.save(good)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "config.json":
                config = json.loads(data)
                layer = next(la for la in config["config"]["layers"] if la["config"]["name"] == "dw")
                layer["config"]["groups"] = 1  # what a Keras 2 file carries
                data = json.dumps(config).encode()
            target.writestr(item, data)
    line = run_error([bad, tmp_path / "o.onnx"], capsys)
    assert line.startswith(f"onnx-fuse: error: cannot load Keras model {bad} (neither Keras 3 nor tf-keras reads it): ")
    assert line.endswith("Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 1}")
