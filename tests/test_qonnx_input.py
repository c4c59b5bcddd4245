"""QONNX input: Brevitas files go through the CLI with exact parity, qonnx's ops run in plain onnxruntime exactly as
qonnx's own executor computes them, and what cannot run is refused with one line.

FUZZ_EXAMPLES=5000 python -m pytest tests/test_qonnx_input.py -k exactly  runs the long random campaign on demand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse.cli import main
from onnx_fuse.errors import InputError
from onnx_fuse.load import load_onnx
from onnx_fuse.normalise import fold_constants
from onnx_fuse.qonnx_ops import QONNX_DOMAIN, ROUNDING_CODES
from onnx_fuse.verify import session

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
BREVITAS_MODELS = ["digits_qcnn_po2", "digits_qcnn_outquant", "digits_qcnn_float", "digits_qcnn_float_qbias"]


def qonnx_execute(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = ModelWrapper(model)
        return execute_onnx(wrapper, feeds)[model.graph.output[0].name]


def ort_execute(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return session(model).run(None, feeds)[0]


def ops(model: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == op_type]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onnx_fuse", *args], check=False, capture_output=True, text=True, cwd=REPO
    )


def legal_pairs(model: onnx.ModelProto) -> int:
    """Conv/Gemm nodes whose output feeds exactly one node, a Relu, or a Quant that feeds exactly one Relu: the
    pairs the rules must fuse (every Gemm here has Quant-of-constant weights, a Dense layer)."""
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)

    def only(name: str) -> onnx.NodeProto | None:
        found = users.get(name, [])
        return found[0] if len(found) == 1 else None

    count = 0
    for node in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        nxt = only(node.output[0])
        if nxt is not None and nxt.op_type == "Quant":
            nxt = only(nxt.output[0])
        count += nxt is not None and nxt.op_type == "Relu"
    return count


def quant_count(model: onnx.ModelProto) -> int:
    """Quant nodes in the graph, counting the one inside each fused Conv/Dense -> Quant -> activation call."""
    return len(ops(model, "Quant")) + sum(n.op_type.startswith(("ConvQuant", "DenseQuant")) for n in model.graph.node)


@pytest.mark.parametrize("name", BREVITAS_MODELS)
def test_brevitas_model_through_the_cli(tmp_path, capsys, name):
    source = MODELS / f"{name}.onnx"
    out = tmp_path / "fused.onnx"
    assert main([str(source), str(out), "--data", str(MODELS / f"{name}.npz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    parity = {p["name"]: p for p in summary["parity"]}
    assert parity["onnx vs fused"]["max_abs_err"] == 0.0 and parity["onnx vs fused"]["samples"] == 116
    assert parity["input onnx vs onnx"]["max_abs_err"] == 0.0
    original, fused = onnx.load(str(source)), onnx.load(str(out))
    assert summary["pairs_fused"] == legal_pairs(original) >= 3
    # No Quant folded into a float initializer: hls4ml reads every precision from them.
    assert quant_count(fused) == len(ops(original, "Quant"))
    assert {(f.domain, f.name) for f in fused.functions} >= {(QONNX_DOMAIN, "Quant")}
    # The written file runs in a plain onnxruntime session and computes what the input file computes.
    data = np.load(MODELS / f"{name}.npz")
    x = data["x"][:8]
    reference = np.concatenate([ort_execute(load_onnx(source), {"x": x[i : i + 1]}) for i in range(len(x))])
    fused_out = np.concatenate([ort_execute(fused, {"x": x[i : i + 1]}) for i in range(len(x))])
    np.testing.assert_array_equal(fused_out, reference)


@pytest.mark.parametrize("name", BREVITAS_MODELS)
def test_input_file_with_quant_functions_matches_brevitas(name):
    model = load_onnx(MODELS / f"{name}.onnx")
    data = np.load(MODELS / f"{name}.npz")
    sess = session(model)
    out = np.concatenate([sess.run(None, {"x": row[None]})[0] for row in data["x"]])
    assert out.shape == data["y_brevitas"].shape == (100, 10)
    # float32 in another order (torch vs onnxruntime); measured on the 100 inputs: 0 (power-of-2 scales), 2.9e-6 (float).
    np.testing.assert_allclose(out, data["y_brevitas"], rtol=0, atol=1e-5)
    # and qonnx's own executor agrees with the functions bit for bit on the whole model.
    np.testing.assert_array_equal(qonnx_execute(model, {"x": data["x"][:1]}), out[:1])


def test_fold_constants_keeps_every_quant_node():
    model = load_onnx(MODELS / "digits_qcnn_po2.onnx")
    folded, _ = fold_constants.apply(model)
    assert len(ops(folded, "Quant")) == len(ops(model, "Quant")) == 12
    assert {i.name for i in model.graph.initializer} <= {i.name for i in folded.graph.initializer}
    assert list(folded.functions) == list(model.functions)  # onnxslim rewrites bodies; ours are put back


@pytest.mark.parametrize("domain", [QONNX_DOMAIN, "onnx.brevitas", "finn.custom_op.general", "finn"])
def test_missing_opset_import_and_domain_aliases(tmp_path, domain):
    model = onnx.load(str(MODELS / "digits_qcnn_po2.onnx"))
    for node in model.graph.node:
        if node.domain == QONNX_DOMAIN:
            node.domain = domain
    kept = [o for o in model.opset_import if o.domain != QONNX_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    with pytest.raises(onnx.checker.ValidationError, match="No opset import for domain"):
        onnx.checker.check_model(model)
    path = tmp_path / "no_import.onnx"
    onnx.save(model, str(path))
    loaded = load_onnx(path)
    assert {n.domain for n in ops(loaded, "Quant")} == {QONNX_DOMAIN}
    assert [(o.domain, o.version) for o in loaded.opset_import if o.domain == QONNX_DOMAIN] == [(QONNX_DOMAIN, 1)]
    x = np.load(MODELS / "digits_qcnn_po2.npz")["x"][:1]
    np.testing.assert_array_equal(
        ort_execute(loaded, {"x": x}), ort_execute(load_onnx(MODELS / "digits_qcnn_po2.onnx"), {"x": x})
    )
    if domain == QONNX_DOMAIN:  # the user's view: the CLI takes the file as it is (exit 0)
        assert main([str(path), str(tmp_path / "out.onnx"), "--samples", "4", "-q"]) == 0


def single_node_model(node: onnx.NodeProto, x_shape: list[int], initializers: list[onnx.TensorProto], qonnx_opset: int):
    graph = helper.make_graph(
        [node],
        "qonnx_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape)],
        initializers,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, qonnx_opset)]
    )


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def scales(draw, channels: int) -> np.ndarray:
    """Power-of-2 or arbitrary positive scales, per tensor or per channel (shape (C, 1) against x (N, C, 1))."""
    shape = (channels, 1) if draw(st.booleans()) else ()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        return (2.0 ** rng.integers(-10, 4, size=shape)).astype(np.float32)
    return rng.uniform(1e-3, 4.0, size=shape).astype(np.float32)


def inputs_with_ties(draw, scale: np.ndarray, zeropt: float, bits: int) -> np.ndarray:
    """Values on the half-integer grid of x / scale + zeropt (rounding ties), around and beyond the clip range."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    span = 2.0**bits
    halves = rng.integers(-4 * span, 4 * span, size=(16, 4, 1)) / 2.0 - zeropt
    noise = rng.standard_normal((16, 4, 1)) * span
    return (np.concatenate([halves, noise]) * scale).astype(np.float32)


@st.composite
def quant_cases(draw):
    bits = draw(st.integers(1, 16))
    scale = scales(draw, 4)
    zeropt = float(draw(st.sampled_from([0.0, 0.0, 1.0, -3.0, 0.5])))
    attrs = {
        "signed": draw(st.integers(0, 1)),
        "narrow": draw(st.integers(0, 1)),
        "rounding_mode": draw(st.sampled_from(list(ROUNDING_CODES) + ["round", "Floor"])),
    }
    node = helper.make_node("Quant", ["x", "scale", "zeropt", "bits"], ["y"], domain=QONNX_DOMAIN, **attrs)
    inits = [const("scale", scale), const("zeropt", zeropt), const("bits", bits)]
    return single_node_model(node, [32, 4, 1], inits, 2), inputs_with_ties(draw, scale, zeropt, bits)


@st.composite
def trunc_cases(draw):
    version = draw(st.sampled_from([1, 2]))
    scale = scales(draw, 4)
    zeropt = float(draw(st.sampled_from([0.0, 2.0])))
    in_bits = draw(st.integers(2, 16))
    out_bits = draw(st.integers(1, in_bits))
    mode = draw(st.sampled_from(list(ROUNDING_CODES)))
    inits = [const("scale", scale), const("zeropt", zeropt), const("in_bits", in_bits)]
    if version == 1:
        node = helper.make_node(
            "Trunc", ["x", "scale", "zeropt", "in_bits", "out_bits"], ["y"], domain=QONNX_DOMAIN, rounding_mode=mode
        )
    else:
        # qonnx requires a power-of-2 ratio out_scale / scale
        inits.append(const("out_scale", scale * np.float32(2.0 ** (in_bits - out_bits))))
        node = helper.make_node(
            "Trunc",
            ["x", "scale", "zeropt", "in_bits", "out_scale", "out_bits"],
            ["y"],
            domain=QONNX_DOMAIN,
            rounding_mode=mode,
            signed=draw(st.integers(0, 1)),
            narrow=draw(st.integers(0, 1)),
        )
    inits.append(const("out_bits", out_bits))
    return single_node_model(node, [32, 4, 1], inits, version), inputs_with_ties(draw, scale, zeropt, in_bits)


@st.composite
def bipolar_cases(draw):
    scale = scales(draw, 4)
    node = helper.make_node("BipolarQuant", ["x", "scale"], ["y"], domain=QONNX_DOMAIN)
    x = inputs_with_ties(draw, scale, 0.0, 2)
    x[0, 0, 0] = 0.0  # qonnx maps 0 to +1
    return single_node_model(node, [32, 4, 1], [const("scale", scale)], 1), x


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=st.one_of(quant_cases(), trunc_cases(), bipolar_cases()))
def test_functions_compute_exactly_what_qonnx_executes(case):
    model, x = case
    runnable = load_onnx_model(model)
    expected = qonnx_execute(runnable, {"x": x})
    actual = ort_execute(runnable, {"x": x})
    assert actual.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(actual, expected)


def load_onnx_model(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnx_fuse.qonnx_ops import prepare

    prepared = prepare(onnx.ModelProto.FromString(model.SerializeToString()))
    onnx.checker.check_model(prepared, full_check=True)
    return prepared


def test_quant_function_respects_every_rounding_mode_on_ties():
    """One fixed case per mode, numbers written out: catches a mode mapped to the wrong rounding."""
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.3, 0.7], np.float32)
    expected = {
        "ROUND": [-2, -2, -0, 0, 2, 2, -0, 1],
        "CEIL": [-2, -1, -0, 1, 2, 3, -0, 1],
        "FLOOR": [-3, -2, -1, 0, 1, 2, -1, 0],
        "UP": [-3, -2, -1, 1, 2, 3, -1, 1],
        "DOWN": [-2, -1, -0, 0, 1, 2, -0, 0],
        "HALF_UP": [-3, -2, -1, 1, 2, 3, -0, 1],
        "HALF_DOWN": [-2, -1, -0, 0, 1, 2, -0, 1],
    }
    for mode, values in expected.items():
        node = helper.make_node(
            "Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode=mode
        )
        model = load_onnx_model(single_node_model(node, [8], [const("s", 1.0), const("z", 0.0), const("b", 8)], 2))
        np.testing.assert_array_equal(ort_execute(model, {"x": x}), np.array(values, np.float32), err_msg=mode)


def refused(tmp_path: Path, model: onnx.ModelProto) -> subprocess.CompletedProcess:
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    result = run_cli(str(path), str(tmp_path / "out.onnx"), "-q")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("onnx-fuse: error: ")
    assert not (tmp_path / "out.onnx").exists()
    return result


def test_multithreshold_is_refused_with_one_line(tmp_path):
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX_DOMAIN, out_dtype="UINT2")
    model = single_node_model(node, [1, 4], [const("t", np.zeros((4, 3)))], 1)
    result = refused(tmp_path, model)
    assert "unsupported qonnx op MultiThreshold" in result.stderr


def test_rounding_mode_qonnx_cannot_execute_is_refused(tmp_path):
    node = helper.make_node(
        "Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND_TO_ZERO"
    )
    model = single_node_model(node, [1, 4], [const("s", 1.0), const("z", 0.0), const("b", 8)], 1)
    result = refused(tmp_path, model)
    assert "rounding_mode 'ROUND_TO_ZERO'" in result.stderr


def test_quant_without_its_required_attribute_is_refused():
    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX_DOMAIN, narrow=0)
    model = single_node_model(node, [1, 4], [const("s", 1.0), const("z", 0.0), const("b", 8)], 1)
    with pytest.raises(InputError, match="lacks its required attribute 'signed'"):
        load_onnx_model(model)


def test_qonnx_cleanup_and_channels_last_accept_a_file_with_the_functions():
    """The hls4ml QONNX recipe's qonnx steps run on the file as onnx-fuse reads it, functions included."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.util.cleanup import cleanup_model

    model = load_onnx(MODELS / "digits_qcnn_po2.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = cleanup_model(ModelWrapper(model)).transform(ConvertToChannelsLastAndClean())
        wrapper = cleanup_model(wrapper)
    assert len(ops(wrapper.model, "Quant")) == len(ops(model, "Quant"))
    assert [f.name for f in wrapper.model.functions] == ["Quant"]


@pytest.mark.parametrize("name, after_conv", [("digits_qcnn_po2", "Activation"), ("digits_qcnn_float", "ApplyAlpha")])
def test_hls4ml_qonnx_flow_converts_a_file_with_the_functions(tmp_path, name, after_conv):
    """hls4ml 1.3's documented QONNX recipe reads the Quant nodes of the file as onnx-fuse reads it: a power-of-2
    Quant becomes a precision, any other ApplyAlpha layers, one of them between each Conv and its ReLU (no compile
    here: that is the hls stage's job)."""
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = load_onnx(MODELS / f"{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = cleanup_model(ModelWrapper(model)).transform(ConvertToChannelsLastAndClean())
        wrapper = cleanup_model(wrapper.transform(GemmToMatMul()))
        config = hls4ml.utils.config.config_from_onnx_model(wrapper, granularity="name", backend="Vivado")
        hls_model = hls4ml.converters.convert_from_onnx_model(
            wrapper, output_dir=str(tmp_path / "hls"), hls_config=config, backend="Vivado", io_type="io_stream"
        )
    layers = [layer.class_name for layer in hls_model.get_layers()]
    assert layers.count("Conv2D") == 2 and layers.count("Dense") == 2
    assert [layers[i + 1] for i, kind in enumerate(layers) if kind == "Conv2D"] == [after_conv, after_conv]
