"""QKeras parity where a quantizer's rounding boundary is crossed: resnet_v1_eembc_quantized_tiny's architecture
(models/qkeras_resnet_tiny.h5, seeded weights). The parity check's default random inputs lie on a grid where float32
sums are exact (verify.GRID_STEP), so QKeras and the export agree bit for bit, exact ties at the quantizers included;
on N(0, 1) floats the one cause of a difference is TensorFlow's and onnxruntime's float32 summation order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("qkeras", reason="the qkeras extra (qkeras-v3) is not installed")

import keras  # noqa: E402

from onnx_fuse import fuse, qonnx_ops  # noqa: E402
from onnx_fuse.load import load  # noqa: E402
from onnx_fuse.qkeras import qkeras_to_qonnx  # noqa: E402
from onnx_fuse.verify import off_grid_note, random_feeds, session  # noqa: E402

STEP = 2.0**-6  # quantized_relu(8, 2)
TOP = 4 - STEP  # its largest value


@pytest.fixture(scope="module")
def tiny(models_dir: Path) -> dict:
    """QKeras' and onnxruntime's first conv (pre-activation) and first quantized_relu, and the exact folded weights."""
    model = load(models_dir / "qkeras_resnet_tiny.h5").keras_model
    graph = qonnx_ops.prepare(qkeras_to_qonnx(model).model)
    # the first Conv -> Relu -> Quant (quantized_relu) of the export
    conv = next(n for n in graph.graph.node if n.op_type == "Conv")
    relu = next(n for n in graph.graph.node if n.op_type == "Relu" and n.input[0] == conv.output[0])
    relu_quant = next(n for n in graph.graph.node if n.op_type == "Quant" and n.input[0] == relu.output[0])
    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    del probe.graph.output[:]
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in (conv.output[0], relu_quant.output[0])
    )
    layer, activation = model.layers[1], model.layers[2]
    assert type(layer).__name__ == "QConv2DBatchnorm" and type(activation).__name__ == "QActivation"
    kernel, bias = (
        np.asarray(layer.kernel_quantizer_internal(w), np.float64) for w in layer.get_folded_weights()
    )
    return {
        "qkeras": keras.Model(model.inputs[0], [layer.output, activation.output]),
        "onnx": session(probe),
        "input": graph.graph.input[0].name,
        "graph": graph,
        "kernel": kernel,
        "bias": bias,
    }


def first_layer(tiny: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Pre-activation and quantized_relu output of the first conv (NHWC), from QKeras, onnxruntime and float64."""
    conv, act = (np.asarray(t) for t in tiny["qkeras"](x, training=False))
    rows = [tiny["onnx"].run(None, {tiny["input"]: x[i : i + 1]}) for i in range(len(x))]
    onnx_conv, onnx_act = (np.concatenate([r[j] for r in rows]).transpose(0, 2, 3, 1) for j in (0, 1))
    # 3x3 stride 4 on 32x32, padding 'same': TensorFlow pads 0 rows/columns here ((8 - 1) * 4 + 3 = 31 < 32)
    windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (3, 3), axis=(1, 2))[:, ::4, ::4]
    exact = np.einsum("nhwcij,ijco->nhwo", windows, tiny["kernel"]) + tiny["bias"]
    magnitude = np.einsum("nhwcij,ijco->nhwo", np.abs(windows), np.abs(tiny["kernel"])) + np.abs(tiny["bias"])
    return {"qkeras_conv": conv, "qkeras_act": act, "onnx_conv": onnx_conv, "onnx_act": onnx_act, "exact": exact,
            "magnitude": magnitude}


def test_default_parity_check_is_exact(models_dir):
    """The CLI's defaults (16 random inputs, seed 0): exact. N(0, 1) inputs failed here with max abs err 0.00293."""
    result = fuse(models_dir / "qkeras_resnet_tiny.h5")
    qkeras_vs_onnx = result.parity[0]
    assert qkeras_vs_onnx.name == "qkeras vs onnx" and qkeras_vs_onnx.samples == 16
    assert qkeras_vs_onnx.ok and qkeras_vs_onnx.max_abs_err == 0.0


def test_grid_inputs_sit_on_rounding_boundaries_and_round_alike(tiny):
    """On the grid the float32 sums are exact (equal to float64 on both sides), many land exactly half-way between
    two quantized_relu steps, and QKeras (tf.round) and the Quant node (ROUND) pick the same, the even one."""
    x = next(iter(random_feeds(tiny["graph"], 16, 0, on_grid=True).values()))
    out = first_layer(tiny, x)
    assert np.array_equal(out["qkeras_conv"], out["exact"]) and np.array_equal(out["onnx_conv"], out["exact"])
    units = out["exact"] / STEP
    ties = (units - np.floor(units) == 0.5) & (units > 0) & (units < TOP / STEP)
    assert np.count_nonzero(ties) > 100
    assert np.array_equal(out["qkeras_act"][ties] / STEP % 2, np.zeros(np.count_nonzero(ties)))  # half to even
    assert np.array_equal(out["onnx_act"], out["qkeras_act"])


def test_float_inputs_differ_only_where_float32_order_decides(tiny, models_dir):
    """On N(0, 1) inputs (the old default) the first conv's float32 sums differ between TensorFlow and onnxruntime,
    and a quantized_relu output differs only where the exact sum lies within float32 rounding of a boundary; the
    bundled off-grid input (sample 13) has one such sum, 148.500036 steps (TensorFlow's float32 sum was 148.5)."""
    x = np.random.default_rng(0).standard_normal((16, 32, 32, 3)).astype(np.float32)
    out = first_layer(tiny, x)
    assert np.array_equal(x[13:14], np.load(models_dir / "qkeras_resnet_tiny_off_grid.npy"))
    on_boundary = out["exact"][13, 7, 2, 16] / STEP
    assert abs(on_boundary - 148.5) <= 28 * 2.0**-24 * out["magnitude"][13, 7, 2, 16] / STEP and on_boundary > 148.5
    assert not np.array_equal(out["qkeras_conv"], out["onnx_conv"])  # summed in another order
    # a float32 sum of 27 products and a bias, in any order, is within 28 * 2**-24 * (sum of |terms|) of the exact
    bound = 28 * 2.0**-24 * out["magnitude"]
    for conv in (out["qkeras_conv"], out["onnx_conv"]):
        assert np.all(np.abs(conv - out["exact"]) <= bound)
    differ = out["qkeras_act"] != out["onnx_act"]
    units = out["exact"][differ] / STEP
    assert np.all(np.abs(units - np.floor(units) - 0.5) <= bound[differ] / STEP)
    assert np.all(np.abs(out["qkeras_act"][differ] - out["onnx_act"][differ]) == STEP)


def test_failure_line_counts_the_inputs_off_the_grid(tiny):
    """A failed QKeras check on --data off the grid says so (the one case left where float32 order decides)."""
    on, off = (random_feeds(tiny["graph"], 4, 0, on_grid=grid) for grid in (True, False))
    assert off_grid_note(on) == ""
    mixed = {name: np.concatenate([on[name], off[name]]) for name in on}
    assert off_grid_note(mixed).startswith(" on 8 inputs, 4 of them off the 2^-8 grid: QKeras' float32 sums")


def test_sweep_builds_on_the_inputs_the_cli_checks(models_dir, tmp_path):
    """`onnx-fuse sweep` recomputes the parity inputs for its C-sims: a QKeras model's random ones on the grid too."""
    from onnx_fuse.sweep_cli import parser, prepare
    from onnx_fuse.verify import GRID_STEP

    args = parser().parse_args([str(models_dir / "qkeras_resnet_tiny.h5"), "--out", str(tmp_path / "s")])
    x = prepare(args).x
    assert x.shape == (16, 32, 32, 3) and np.array_equal(x / GRID_STEP, np.round(x / GRID_STEP))
