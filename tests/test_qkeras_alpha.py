"""QKeras quantized_bits(alpha='auto') / 'auto_po2' weights: export, the hls4ml rewrite, and one fused-vs-unfused
compile against QKeras' own outputs (models/digits_qkeras_alpha.h5, made by models/make_qkeras_alpha_models.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("qkeras", reason="the qkeras extra (qkeras-v3) is not installed")

import keras  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from qkeras import QActivation, QConv2D, QDense, quantized_bits  # noqa: E402

from onnx_fuse.errors import InputError  # noqa: E402
from onnx_fuse.load import load  # noqa: E402
from onnx_fuse.qkeras import qkeras_to_qonnx  # noqa: E402
from test_qkeras import run_qonnx  # noqa: E402

NAME = "digits_qkeras_alpha"


@pytest.fixture(scope="module")
def source(models_dir):
    return load(models_dir / f"{NAME}.h5").keras_model


@pytest.fixture(scope="module")
def exported(source):
    return qkeras_to_qonnx(source)


@pytest.fixture(scope="module")
def normalised(models_dir):
    """The graph the CLI fuses: its own export steps (runnable Quant functions), then normalise."""
    from onnx_fuse.normalise import normalise
    from onnx_fuse.pipeline import export

    return normalise(export(load(models_dir / f"{NAME}.h5")))[0]


@pytest.fixture(scope="module")
def fused(normalised):
    from onnx_fuse.fusion import fuse

    model, report = fuse(normalised)
    assert report.pairs == 3
    return model


@pytest.fixture(scope="module")
def data(models_dir):
    return np.load(models_dir / f"{NAME}.npz")


def weight_quant(model: onnx.ModelProto, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, weight) of the Quant node of one exported weight."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "Quant" and n.name.startswith(prefix))
    return inits[node.input[1]], inits[node.input[0]]


def test_auto_weights_become_per_channel_quant_scales(source, exported):
    """alpha='auto': one float scale per output channel, S = q.scale * 2**(integer - bits + 1), laid out as the
    exported weight (OIHW conv: (O, 1, 1, 1); MatMul (in, out): (1, out)); 'auto_po2' stays one power-of-2 type."""
    for layer, shape, step in (("conv1", (8, 1, 1, 1), 2.0**-5), ("dense1", (1, 16), 2.0**-7),
                               ("logits", (1, 10), 2.0**-7)):
        scale, weight = weight_quant(exported.model, f"{layer}/kernel")
        q = source.get_layer(layer).kernel_quantizer_internal
        expected = np.asarray(q.scale, np.float32).reshape(-1) * np.float32(step)
        assert scale.shape == shape and np.array_equal(scale.reshape(-1), expected)
        assert len(np.unique(scale)) > 1 and not np.all(np.log2(scale) == np.round(np.log2(scale)))
        z = np.round(weight / scale)  # QKeras' weights are float32(S * z), z integer in +-(2**(bits-1) - 1)
        assert np.array_equal(z * scale, weight) and np.abs(z).max() <= 2 ** (6 if layer == "conv1" else 8) / 2 - 1
    scale, _ = weight_quant(exported.model, "conv2/kernel")
    assert scale.shape == () and np.log2(scale) == np.round(np.log2(scale))


def test_export_matches_qkeras(exported, data):
    """On the 100 stored digits: every quantized activation equals QKeras' (bit for bit, checked at the argmax and
    through the logits' size of error); the logits, a float-scale Dense with no quantizer after it, differ by float32
    summation order only (QKeras and onnxruntime add the same float products in different orders)."""
    y = run_qonnx(exported.model, data["x"])
    diff = np.abs(y - data["y_qkeras"]).max()
    assert diff < 1e-5, diff  # measured 2.4e-06; one quantization step anywhere upstream would move it by >= 0.03
    assert np.array_equal(y.argmax(1), data["y_qkeras"].argmax(1))


@pytest.mark.parametrize("alpha", ["auto", "auto_po2"])
def test_auto_on_an_activation_refused(alpha):
    """QKeras computes an activation's 'auto' step from the batch it quantizes (max |x| over every axis but the
    last, the batch axis included): no fixed function to export."""
    model = keras.Sequential([keras.Input((4,)), QDense(2, name="d"),
                              QActivation(quantized_bits(8, 2, alpha=alpha), name="act")])
    with pytest.raises(InputError, match=f"'act'.*alpha='{alpha}' on an activation recomputes its scale from every "
                                         "input batch"):
        qkeras_to_qonnx(model)


def test_auto_with_keep_negative_false_refused():
    model = keras.Sequential([keras.Input((6, 6, 1)), QConv2D(
        2, 3, kernel_quantizer=quantized_bits(8, 0, keep_negative=False, alpha="auto"), name="c")])
    with pytest.raises(InputError, match="'c'.*alpha='auto' with keep_negative=False"):
        qkeras_to_qonnx(model)


def test_preprocess_moves_per_channel_weight_scales_below_the_layer(fused, data):
    """hls4ml 1.3 cannot move a per-channel float weight scale below a MatMul (nor below a Conv with a bias); the
    preprocess gives it integer weights, then Mul(scale) and Add(bias). The graph hls4ml reads computes what the file
    does (qonnx's executor), and no weight Quant keeps a per-channel float scale. Without weight_scales.py the same
    call raised UnsupportedModelError (check_per_channel_weight_scales)."""
    from hls_backend.preprocess import preprocess

    graph, marks = preprocess(fused)
    assert marks == {"Relu_0": "ConvRelu", "Relu_1": "ConvRelu", "Relu_2": "DenseRelu"}
    ops = [(n.op_type, n.name) for n in graph.graph.node if n.op_type in ("Conv", "MatMul", "Mul", "Add", "Relu")]
    assert ops == [("Conv", "Conv_0"), ("Mul", "Mul_0"), ("Add", "Add_0"), ("Relu", "Relu_0"),
                   ("Conv", "Conv_1"), ("Relu", "Relu_1"),
                   ("MatMul", "MatMul_0"), ("Mul", "Mul_1"), ("Add", "Add_1"), ("Relu", "Relu_2"),
                   ("MatMul", "MatMul_1"), ("Mul", "Mul_2"), ("Add", "Add_2")]
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    producers = {o: n for n in graph.graph.node for o in n.output}
    for node in (n for n in graph.graph.node if n.op_type in ("Conv", "MatMul")):
        quant = producers[node.input[1]]
        assert inits[quant.input[1]].size == 1  # one scale: 1 (integers) or conv2's power of 2
    for node in (n for n in graph.graph.node if n.op_type == "Mul"):
        quant = producers[node.input[1]]  # the scale, exactly, through a power-of-2 Quant
        values, step, bits = (inits[i] for i in (quant.input[0], quant.input[1], quant.input[3]))
        assert np.array_equal(np.round(values / step) * step, values) and values.max() / step < 2.0**bits
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapped = ModelWrapper(graph)
    x = data["x"][:20]
    y = np.concatenate([execute_onnx(wrapped, {"global_in": x[i : i + 1]})["global_out"] for i in range(len(x))])
    assert np.abs(y - data["y_qkeras"][:20]).max() < 1e-5


def exact_logits(source, x: np.ndarray) -> np.ndarray:
    """The logits layer in exact arithmetic (float64 holds every product and sum here) on QKeras' own quantized
    input to it: s[o] * (relu3 @ z)[o] + b[o]."""
    relu3 = np.asarray(keras.Model(source.inputs[0], source.get_layer("relu3").output)(x, training=False), np.float64)
    layer = source.get_layer("logits")
    q = layer.kernel_quantizer_internal
    w = np.asarray(q(layer.kernel), np.float64)
    s = (np.asarray(q.scale, np.float32).reshape(-1) * np.float32(2.0**-7)).astype(np.float64)
    b = np.asarray(layer.bias_quantizer_internal(layer.bias), np.float64)
    return s * (relu3 @ np.round(w / s)) + b


def test_hls4ml_csim_fused_unfused_and_qkeras(source, normalised, fused, data, compiled):
    """The family's one default compile pair (io_stream, Vivado, no precision file: every type from the Quant
    nodes). Fused == unfused bit for bit; each layer's ApplyAlpha (scale and bias) goes into its write-back, the
    ReLU too. Against QKeras on the 100 stored digits: C-sim equals, at every one of the 1,000 logits, the float32 of
    the exact value computed from QKeras' own last quantized activation (so every quantized activation before it
    agrees with QKeras' too: one step off anywhere would move a logit by far more); QKeras' own float32 logits are
    1.8e-06 away from that exact value at most (float32 products and sums of float weights)."""
    import hls_backend
    from hls_backend import project
    from test_hls_backend import csim_pair

    cfg = hls_backend.config_from_fused_onnx(fused)
    x, y_qkeras = data["x"], data["y_qkeras"]
    got, ref = csim_pair(compiled, fused, normalised, x, backend="Vivado", io_type="io_stream", hls_config=cfg)
    assert np.array_equal(got.y, ref.y)
    assert project.absorbed_stages(got.output_dir) == [
        "bn_Add_0 (applyalpha) into Conv2D_Conv_0", "bn_Add_1 (applyalpha) into Dense_MatMul_0",
        "bn_Add_2 (applyalpha) into Dense_MatMul_1"]
    fused_calls, unfused_calls = project.layer_calls(got.output_dir), project.layer_calls(ref.output_dir)
    assert [c for c in unfused_calls if c not in fused_calls] == [
        ("normalize", "bn_Add_0"), ("relu", "Relu_0"), ("relu", "Relu_1"), ("normalize", "bn_Add_1"),
        ("relu", "Relu_2"), ("normalize", "bn_Add_2")]
    assert project.stream_count(ref.output_dir) - project.stream_count(got.output_dir) == 6
    y = got.y.reshape(y_qkeras.shape)
    exact = exact_logits(source, x)
    assert np.array_equal(y, exact.astype(np.float32)), np.abs(y - exact).max()
    assert np.abs(y_qkeras - exact).max() < 1e-5  # measured 1.8e-06
    assert np.array_equal(y.argmax(1), y_qkeras.argmax(1))
