"""QKeras -> QONNX export: the QONNX graph (run by qonnx's executor) against QKeras itself, on the bundled models
and on small models covering every supported layer and quantizer; refusals; hls4ml C-sim against QKeras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("qkeras", reason="the qkeras extra (qkeras-v3) is not installed")

import keras  # noqa: E402
from qkeras import (  # noqa: E402
    QActivation,
    QConv1D,
    QConv2D,
    QConv2DBatchnorm,
    QDense,
    QDenseBatchnorm,
    QDepthwiseConv2D,
    QDepthwiseConv2DBatchnorm,
    QSeparableConv2D,
    quantized_bits,
    quantized_relu,
    quantized_tanh,
)

from onnx_fuse.errors import InputError  # noqa: E402
from onnx_fuse.load import load  # noqa: E402
from onnx_fuse.qkeras import qkeras_to_qonnx  # noqa: E402


def run_qonnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """qonnx's own executor (Quant in numpy, the rest in onnxruntime), one sample at a time (batch 1 graph)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    wrapped = cleanup_model(ModelWrapper(model))
    name, out = wrapped.graph.input[0].name, wrapped.graph.output[0].name
    return np.concatenate([execute_onnx(wrapped, {name: x[i : i + 1]})[out] for i in range(len(x))])


def quant_attrs(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[float, int, int]:
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    signed = next(a.i for a in node.attribute if a.name == "signed")
    return float(inits[node.input[1]]), int(inits[node.input[3]]), signed


def load_qkeras(path: Path):
    source = load(path)
    assert source.loader == "qkeras", source.loader
    return source.keras_model


def test_detects_qkeras_files(models_dir):
    assert load(models_dir / "tiny2_float.h5").loader.startswith(("keras 3", "tf-keras"))
    assert load(models_dir / "digits_conv1d.keras").loader == "keras 3"


@pytest.fixture(scope="module")
def bundled(models_dir):
    return {name: qkeras_to_qonnx(load_qkeras(models_dir / f"{name}.h5")) for name in ("tiny2_qkeras", "digits_qkeras")}


@pytest.mark.parametrize("name", ["tiny2_qkeras", "digits_qkeras"])
def test_bundled_models_match_qkeras_exactly(models_dir, bundled, name):
    """On the 100 stored inputs: QONNX == QKeras (stored y_qkeras and the live model), every value, not just argmax."""
    data = np.load(models_dir / f"{name}.npz")
    exported = bundled[name]
    y = run_qonnx(exported.model, data["x"])
    assert np.array_equal(y, data["y_qkeras"]), f"max abs err {np.abs(y - data['y_qkeras']).max()}"
    assert np.array_equal(np.asarray(exported.reference(data["x"], training=False)), data["y_qkeras"])


def test_tiny2_has_the_qonnx_conv_pattern(bundled):
    """Conv(X, Quant(W, 1/32, 8b), Quant(b)) -> Relu -> Quant(1/64, 8b, unsigned), five times; softmax left out."""
    exported = bundled["tiny2_qkeras"]
    model = exported.model
    producer = {o: n for n in model.graph.node for o in n.output}
    consumer = {i: n for n in model.graph.node for i in n.input}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 5
    for conv in convs:
        w, b = producer[conv.input[1]], producer[conv.input[2]]
        assert (w.op_type, b.op_type) == ("Quant", "Quant")
        assert quant_attrs(model, w) == (1 / 32, 8, 1) and quant_attrs(model, b) == (1 / 32, 8, 1)
        relu = consumer[conv.output[0]]
        assert relu.op_type == "Relu"
        act = consumer[relu.output[0]]
        assert act.op_type == "Quant" and quant_attrs(model, act) == (1 / 64, 8, 0)
    assert "Softmax" not in {n.op_type for n in model.graph.node}
    assert exported.notes and "softmax" in exported.notes[0]


def with_bn_stats(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every weight (BatchNorm statistics included) seeded non-trivial values, as training would."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for w in layer.weights:
            value = rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path or "gamma" in w.path else rng.normal(
                0, 0.5, w.shape)
            weights.append(value.astype(np.float32) if w.dtype == "float32" else np.asarray(keras.ops.convert_to_numpy(w)))
        layer.set_weights(weights)
    return model


def zoo_2d() -> keras.Model:
    """Every supported 2-D layer; default alpha (auto_po2, per channel) on QConv2D/QDense kernels."""
    inp = keras.Input((8, 8, 3), name="img")
    h = QActivation(quantized_bits(8, 2), name="in_q")(inp)
    h = QConv2D(4, 3, padding="same", kernel_quantizer=quantized_bits(6, 1), bias_quantizer=quantized_bits(8, 3),
                name="conv")(h)
    h = QActivation(quantized_relu(6, 2), name="relu1")(h)
    h = QDepthwiseConv2D(3, depthwise_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(8, 3),
                         activation=quantized_relu(8, 3), name="dw")(h)
    h = QSeparableConv2D(6, 3, padding="same", depthwise_quantizer=quantized_bits(6, 1, alpha=0.5),
                         pointwise_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(8, 3),
                         name="sep")(h)
    h = QActivation(quantized_bits(8, 3, symmetric=1), name="sym_q")(h)
    h = QDepthwiseConv2DBatchnorm(3, padding="same", depthwise_quantizer=quantized_bits(8, 2, alpha=1),
                                  bias_quantizer=quantized_bits(8, 3), activation=quantized_relu(8, 3),
                                  name="dw_bn")(h)
    h = QConv2DBatchnorm(4, 1, kernel_quantizer=quantized_bits(8, 2, alpha=1), bias_quantizer=quantized_bits(8, 2),
                         name="conv_bn")(h)
    h = QActivation(quantized_relu(8, 3), name="relu2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = QDenseBatchnorm(8, kernel_quantizer=quantized_bits(8, 2, alpha=1), bias_quantizer=quantized_bits(8, 3),
                        activation=quantized_relu(8, 3), name="dense_bn")(h)
    out = QDense(5, kernel_quantizer=quantized_bits(8, 2), bias_quantizer=quantized_bits(8, 3, keep_negative=True),
                 name="logits")(h)
    return with_bn_stats(keras.Model(inp, out))


def zoo_1d() -> keras.Model:
    return with_bn_stats(keras.Sequential([
        keras.Input((12, 2)),
        QActivation(quantized_bits(6, 2, keep_negative=False), name="in_q"),
        QConv1D(4, 3, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1, alpha=1),
                activation=quantized_relu(6, 2), name="conv1d"),
        QActivation("relu", name="float_relu"),  # a plain activation: no Quant
        keras.layers.Flatten(),
        QDense(3, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1), name="out"),
    ]), seed=1)


@pytest.mark.parametrize("make", [zoo_2d, zoo_1d])
def test_every_supported_layer_matches_qkeras(make):
    model = make()
    x = np.random.default_rng(2).normal(0, 2, (16, *model.inputs[0].shape[1:])).astype(np.float32)
    exported = qkeras_to_qonnx(model)
    ops = {n.op_type for n in exported.model.graph.node}
    assert "Quant" in ops and exported.quant_nodes >= len(model.layers) - 2
    y = run_qonnx(exported.model, x)
    reference = np.asarray(model(x, training=False))
    assert np.array_equal(y, reference), f"max abs err {np.abs(y - reference).max()}"


def test_auto_po2_weights_become_one_wide_enough_type():
    """QDense's default kernel quantizer becomes alpha='auto_po2' (qkeras sets it): power-of-2 steps per output.
    The export uses the finest step with the bits widened to span the coarsest, which holds every weight exactly."""
    model = zoo_2d()
    exported = qkeras_to_qonnx(model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in exported.model.graph.initializer}
    node = next(n for n in exported.model.graph.node if n.name.startswith("logits/kernel"))
    q = model.get_layer("logits").kernel_quantizer_internal
    steps = np.asarray(q.scale).reshape(-1) * 2.0 ** (2 - 8 + 1)  # quantized_bits(8, 2): 2**(integer - bits + 1)
    assert len(np.unique(steps)) > 1
    assert inits[node.input[1]] == steps.min()
    assert inits[node.input[3]] == 8 + np.log2(steps.max() / steps.min())


@pytest.mark.parametrize(
    "quantizer, words",
    [
        (quantized_tanh(4), "quantized_tanh"),
        (quantized_bits(8, 2, alpha="auto"), "alpha='auto'"),
        (quantized_bits(8, 2, alpha="auto_po2"), "on an activation"),
        (quantized_relu(8, 2, negative_slope=0.25), "negative_slope"),
    ],
)
def test_unsupported_activation_quantizer_refused_in_one_line(quantizer, words):
    model = keras.Sequential([keras.Input((4,)), QDense(2, name="d"), QActivation(quantizer, name="act_x")])
    with pytest.raises(InputError) as info:
        qkeras_to_qonnx(model)
    message = str(info.value)
    assert "\n" not in message and "'act_x'" in message and words in message


def test_non_power_of_two_alpha_refused():
    model = keras.Sequential([keras.Input((4,)), QDense(2, kernel_quantizer=quantized_bits(8, 2, alpha=0.3), name="d")])
    with pytest.raises(InputError, match=r"QKeras layer 'd': quantizer quantized_bits.*alpha=0.3"):
        qkeras_to_qonnx(model)


def test_missing_extra_named_in_one_line(models_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "qkeras.utils", None)  # what `import qkeras.utils` meets without the extra
    with pytest.raises(InputError) as info:
        load_qkeras(models_dir / "digits_qkeras.h5")
    assert 'pip install -e ".[qkeras]"' in str(info.value) and "QConv2DBatchnorm" in str(info.value)


@pytest.mark.hls
@pytest.mark.slow  # one hls4ml compile: about 40 s here
def test_hls4ml_csim_matches_qkeras_bit_for_bit(models_dir, tmp_path):
    """The QONNX file through hls4ml's QONNX flow with no precision file: every type comes from the Quant nodes
    (the input quantizer included), and C-sim reproduces QKeras exactly on the 100 held-out digits."""
    from hls_backend import config_from_fused_onnx, run_csim
    from onnx_fuse.normalise import explicit_conv_attrs, layout_reshape

    data = np.load(models_dir / "digits_qkeras.npz")
    model = qkeras_to_qonnx(load_qkeras(models_dir / "digits_qkeras.h5")).model
    # the two normalise passes this graph needs (a one-channel layout Reshape, a 'valid' conv without pads)
    for apply in (layout_reshape.apply, explicit_conv_attrs.apply):
        model, _ = apply(model)
    config = config_from_fused_onnx(model, backend="Vitis")
    result = run_csim(model, data["x"], tmp_path / "prj", backend="Vitis", io_type="io_stream", hls_config=config,
                      fuse=False)
    y = result.y.reshape(len(data["x"]), -1)
    assert np.array_equal(y, data["y_qkeras"]), f"max abs diff {np.abs(y - data['y_qkeras']).max()}"


def test_a_quant_that_would_change_qkeras_weights_is_caught():
    """The guard behind every weight Quant: QKeras' quantized values must be fixed points of the emitted Quant."""
    from onnx_fuse.qkeras.quant_nodes import ExportBug, check_on_grid
    from onnx_fuse.qkeras.quantizers import QuantSpec
    from onnx_fuse.qkeras.rebuild import QuantLayer

    value = np.array([0.25, -0.5, 0.125], np.float32)  # on the 1/8 grid
    layer = QuantLayer("qkx0__", "conv")
    check_on_grid(layer, "kernel", QuantSpec(np.float32(1 / 8), 4, True, False), value)
    with pytest.raises(ExportBug, match="conv: the Quant node for kernel"):
        check_on_grid(layer, "kernel", QuantSpec(np.float32(1 / 4), 4, True, False), value)


def test_keras_v3_archive_detected_loaded_and_exported(tmp_path):
    model = zoo_1d()
    path = tmp_path / "zoo.keras"
    model.save(path)
    x = np.random.default_rng(4).normal(0, 2, (4, 12, 2)).astype(np.float32)
    y = run_qonnx(qkeras_to_qonnx(load_qkeras(path)).model, x)
    assert np.array_equal(y, np.asarray(model(x, training=False)))


def test_cli_on_the_original_tiny2_unchanged(models_dir, tmp_path, capsys):
    """The 2021 project's own QKeras file: 5 pairs fused, QKeras vs QONNX exact with 100% top-1 agreement on the
    100 original images (and 16 random inputs), fused vs unfused exact."""
    from onnx_fuse.cli import main

    out = tmp_path / "t.onnx"
    args = [str(models_dir / "tiny2_qkeras.h5"), str(out), "--data", str(models_dir / "tiny2_qkeras.npz"), "-q"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "fused 5 Conv->Relu pairs into onnx_fuse::ConvRelu" in text
    assert "parity qkeras vs onnx: max abs err 0 on 116 inputs, same top-1 class on 116/116" in text
    assert "parity onnx vs fused: max abs err 0 on 116 inputs (exact) ok" in text
    assert {n.op_type for n in onnx.load(out).graph.node} >= {"ConvRelu", "Quant"}


def test_all_zero_bias_dropped_by_tf2onnx_exports():
    """A freshly initialised QDense (bias all zeros): tf2onnx leaves the zero bias out of the graph, and zeros need
    no Quant node; this was an ExportBug (exit 1)."""
    model = keras.Sequential([keras.Input((8,)), QDense(4, kernel_quantizer=quantized_bits(8, 2, alpha=1),
                                                        bias_quantizer=quantized_bits(8, 2, alpha=1)),
                              QActivation(quantized_relu(8, 2))])
    exported = qkeras_to_qonnx(model).model
    assert sum(n.op_type == "Quant" for n in exported.graph.node) == 2  # kernel and activation
    x = np.random.default_rng(5).normal(0, 2, (4, 8)).astype(np.float32)
    assert np.array_equal(run_qonnx(exported, x), np.asarray(model(x, training=False)))


def test_biasless_qdense_before_quantized_relu_fuses():
    """QDense(use_bias=False) exports as MatMul(x, Quant(W)): written as a Gemm, its quantized_relu fuses, and the
    fused graph equals QKeras."""
    import onnx_fuse

    bits = quantized_bits(8, 2, alpha=1)
    model = keras.Sequential([keras.Input((8,)), QDense(6, use_bias=False, kernel_quantizer=bits),
                              QActivation(quantized_relu(8, 2)), QDense(3, kernel_quantizer=bits, bias_quantizer=bits)])
    result = onnx_fuse.fuse(model)
    assert result.fusion.by_op == {"DenseRelu": 1}, result.fusion.by_op
    assert all(p.ok and p.max_abs_err == 0 for p in result.parity), result.parity
