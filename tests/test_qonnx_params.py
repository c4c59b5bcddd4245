"""qonnx-era parameter types: Quant / BipolarQuant / Trunc parameters of any numeric type (qonnx 0.4's QKeras
converter wrote float64 scales and int64 zero points and bit widths) are read as the QONNX spec's float32, and
compute exactly what qonnx's own executor computes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse.cli import main
from onnx_fuse.load import load_onnx
from onnx_fuse.qonnx_ops import QONNX_DOMAIN
from onnx_fuse.verify import session

MODELS = Path(__file__).resolve().parent.parent / "models"
PARAMETER_TYPES = [np.float64, np.int64, np.int32, np.float16, np.uint8]


def qonnx_execute(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return execute_onnx(ModelWrapper(model).transform(InferShapes()), feeds)[model.graph.output[0].name]


def qonnx04_style(model: onnx.ModelProto, scale_type=np.float64, int_type=np.int64) -> onnx.ModelProto:
    """Every Quant scale as `scale_type`, zero points and bit widths as `int_type`, graph-input entries to match."""
    typed = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in typed.graph.initializer}
    for node in typed.graph.node:
        if node.op_type != "Quant":
            continue
        for index, name in enumerate(node.input[1:], 1):
            array = numpy_helper.to_array(inits[name])
            inits[name].CopyFrom(numpy_helper.from_array(array.astype(scale_type if index == 1 else int_type), name))
    for value in typed.graph.input:
        if value.name in inits:
            value.type.tensor_type.elem_type = inits[value.name].data_type
    return typed


def test_qonnx04_file_through_the_cli_exact_against_qonnx(tmp_path, capsys):
    """digits_qcnn_po2 with the parameter types qonnx 0.4 wrote: refused before ('B has inconsistent type
    tensor(double)'), now it fuses with exact parity, and onnxruntime with our functions computes what qonnx's
    executor computes on the very same file."""
    original = onnx.load(str(MODELS / "digits_qcnn_po2.onnx"))
    typed = qonnx04_style(original)
    path = tmp_path / "qonnx04.onnx"
    onnx.save(typed, str(path))
    data = np.load(MODELS / "digits_qcnn_po2.npz")
    assert main([str(path), str(tmp_path / "out.onnx"), "--data", str(MODELS / "digits_qcnn_po2.npz"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fused 2 Conv->Relu pairs" in out and "parity onnx vs fused: max abs err 0 on 116 inputs" in out
    loaded = load_onnx(path)
    sess = session(loaded)
    x = data["x"][:4]
    ours = np.concatenate([sess.run(None, {"x": row[None]})[0] for row in x])
    theirs = np.concatenate([qonnx_execute(typed, {"x": row[None]}) for row in x])
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, data["y_brevitas"][:4])  # and Brevitas' own outputs (power-of-2 scales)


def single(op: str, params: dict[str, np.ndarray], qonnx_opset: int = 1, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["x", *params], ["y"], domain=QONNX_DOMAIN, **attrs)
    graph = helper.make_graph(
        [node],
        "typed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 4])],
        [numpy_helper.from_array(v, k) for k, v in params.items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, qonnx_opset)]
    )


def cases(dtype) -> list[onnx.ModelProto]:
    """Quant, Trunc (v1, v2) and BipolarQuant with every parameter in `dtype` (scales stay positive, exact in it)."""
    fractions = np.issubdtype(dtype, np.floating)
    scale = np.array([0.25, 0.5, 2.0, 1.0] if fractions else [1, 2, 4, 1], dtype)
    return [
        single("Quant", {"s": scale, "z": np.array(0, dtype), "b": np.array(4, dtype)}, signed=1, narrow=0),
        single(
            "Quant",
            {"s": np.array(0.5 if fractions else 2, dtype), "z": np.array(3, dtype), "b": np.array(6, dtype)},
            signed=0,
            narrow=0,
            rounding_mode="FLOOR",
        ),
        single(
            "Trunc",
            {"s": scale, "z": np.array(0, dtype), "i": np.array(8, dtype), "o": np.array(4, dtype)},
            rounding_mode="FLOOR",
        ),
        single(
            "Trunc",
            {
                "s": scale,
                "z": np.array(0, dtype),
                "i": np.array(8, dtype),
                "os": scale * dtype(16),
                "o": np.array(4, dtype),
            },
            qonnx_opset=2,
            rounding_mode="ROUND",
            signed=1,
            narrow=0,
        ),
        single("BipolarQuant", {"s": scale}),
    ]


@pytest.mark.parametrize("dtype", PARAMETER_TYPES, ids=lambda t: t.__name__)
def test_every_parameter_type_reads_as_float32_exact_against_qonnx(tmp_path, dtype):
    """Against qonnx's executor on the file with float32 parameters, and on the typed file itself."""
    x = (np.random.default_rng(1).standard_normal((64, 4)) * 8).astype(np.float32)
    x[:8] = np.arange(-4, 4, dtype=np.float32)[:, None] / 2  # ties
    for index, model in enumerate(cases(dtype)):
        path = tmp_path / f"case{index}.onnx"
        onnx.save(model, str(path))
        loaded = load_onnx(path)
        node = next(n for n in loaded.graph.node if n.domain == QONNX_DOMAIN)
        kinds = {t.name: t.data_type for t in loaded.graph.initializer}
        assert all(kinds[name] == TensorProto.FLOAT for name in node.input[1:])
        ours = session(loaded).run(None, {"x": x})[0]
        np.testing.assert_array_equal(ours, qonnx_execute(spec_float32(model), {"x": x}), err_msg=node.op_type)
        if dtype is not np.uint8:
            # qonnx's executor takes these types as they are and gets the same numbers. On uint8 it does not: its
            # min_int negates 2 ** (bits - 1) in uint8 and wraps (a signed 4-bit clamp to 248), which the spec's
            # float32 reading avoids.
            np.testing.assert_array_equal(ours, qonnx_execute(model, {"x": x}), err_msg=node.op_type)


def spec_float32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The file as the QONNX spec types it: every initializer float32."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    for tensor in copy.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    return copy


def test_parameter_computed_at_run_time_gets_a_cast(tmp_path):
    """A bit width from a Constant node (int64) is cast in the graph, before the Quant that reads it."""
    model = single("Quant", {"s": np.array(0.25, np.float64), "z": np.array(0, np.int64)}, signed=1, narrow=0)
    model.graph.node.insert(
        0, helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(np.array(5, np.int64)))
    )
    model.graph.node[1].input.append("b")
    path = tmp_path / "const.onnx"
    onnx.save(model, str(path))
    loaded = load_onnx(path)
    assert [n.op_type for n in loaded.graph.node] == ["Constant", "Cast", "Quant"]
    x = np.linspace(-8, 8, 256, dtype=np.float32).reshape(64, 4)
    np.testing.assert_array_equal(session(loaded).run(None, {"x": x})[0], qonnx_execute(model, {"x": x}))
