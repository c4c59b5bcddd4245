"""QONNX already in channels-last form (qonnx's `qonnx.custom_op.channels_last` Conv / MaxPool, as hls4ml's example
files *_ch_last.onnx): read as they are, run exactly as qonnx's executor runs them, and handed to hls4ml without a
second conversion. The files are made here with qonnx's own ConvertToChannelsLastAndClean from the bundled
channels-first Brevitas files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_fuse.channels_last_ops import DOMAIN
from onnx_fuse.cli import main
from onnx_fuse.load import load_onnx
from onnx_fuse.verify import session

MODELS = Path(__file__).resolve().parent.parent / "models"


def channels_last(name: str, path: Path, input_channels_last: bool = True) -> Path:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cleanup_model(ModelWrapper(str(MODELS / f"{name}.onnx")))
        model = model.transform(ConvertToChannelsLastAndClean(make_input_channels_last=input_channels_last))
    model.save(str(path))
    return path


def qonnx_execute(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return execute_onnx(ModelWrapper(model), {model.graph.input[0].name: x})[model.graph.output[0].name]


@pytest.mark.parametrize(
    "name, input_channels_last",
    [
        ("digits_qcnn_po2", True),
        ("digits_qcnn_outquant", False),
        pytest.param("digits_qcnn_po2", False, marks=pytest.mark.slow),
        pytest.param("digits_qcnn_outquant", True, marks=pytest.mark.slow),
        pytest.param("digits_qcnn_float", True, marks=pytest.mark.slow),
        pytest.param("digits_qcnn_float", False, marks=pytest.mark.slow),
    ],
)
def test_channels_last_qonnx_read_as_is(tmp_path, capsys, name, input_channels_last):
    path = channels_last(name, tmp_path / f"{name}_ch_last.onnx", input_channels_last)
    original = onnx.load(str(path))
    assert {n.op_type for n in original.graph.node if n.domain == DOMAIN} == {"Conv", "MaxPool"}
    data = np.load(MODELS / f"{name}.npz")
    x = data["x"].transpose(0, 2, 3, 1) if input_channels_last else data["x"]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.onnx"
    assert main([str(path), str(out), "--data", str(tmp_path / "x.npy"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert all(p["max_abs_err"] == 0.0 for p in summary["parity"])
    assert summary["pairs_by_op"] == {"DenseRelu": 1}  # the channels-last convs stay as written
    written = onnx.load(str(out))
    assert [n.op_type for n in written.graph.node if n.domain == DOMAIN] == [
        n.op_type for n in original.graph.node if n.domain == DOMAIN
    ]
    # qonnx's own executor on the file as given vs onnxruntime on it (exact), and vs Brevitas on the source file
    sess = session(load_onnx(path))
    ours = np.concatenate([sess.run(None, {original.graph.input[0].name: row[None]})[0] for row in x])
    np.testing.assert_array_equal(ours[:3], np.concatenate([qonnx_execute(original, row[None]) for row in x[:3]]))
    np.testing.assert_allclose(ours, data["y_brevitas"], rtol=0, atol=1e-5)


def test_hls4ml_gets_the_graph_without_a_second_conversion(tmp_path):
    """The hls path's qonnx recipe leaves the channels-last nodes and adds no layout Transpose."""
    from hls_backend.preprocess import preprocess

    path = channels_last("digits_qcnn_po2", tmp_path / "ch_last.onnx")
    given = onnx.load(str(path))
    graph, _ = preprocess(load_onnx(path))

    def layout(model: onnx.ModelProto) -> tuple[list[str], int]:
        return [n.op_type for n in model.graph.node if n.domain == DOMAIN], sum(
            n.op_type == "Transpose" for n in model.graph.node
        )

    assert layout(graph) == layout(given) == (["Conv", "Conv", "MaxPool"], 0)


def test_channels_last_op_qonnx_does_not_have_is_refused(tmp_path):
    path = channels_last("digits_qcnn_po2", tmp_path / "ch_last.onnx")
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.domain == DOMAIN and n.op_type == "MaxPool")
    node.op_type = "AveragePool"
    onnx.save(model, str(path))
    from onnx_fuse.errors import InputError

    with pytest.raises(
        InputError,
        match="unsupported channels-last AveragePool node .*: qonnx's channels-last domain has only Conv, MaxPool, "
        "BatchNormalization",
    ):
        load_onnx(path)


@pytest.mark.slow
@pytest.mark.hls
def test_channels_last_qonnx_through_hls_bit_exact(tmp_path, capsys):
    path = channels_last("digits_qcnn_po2", tmp_path / "ch_last.onnx")
    x = np.load(MODELS / "digits_qcnn_po2.npz")["x"][:32].transpose(0, 2, 3, 1)
    np.save(tmp_path / "x.npy", x)
    code = main([str(path), str(tmp_path / "out.onnx"), "--data", str(tmp_path / "x.npy"), "--hls-out",
                 str(tmp_path / "hls"), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hls4ml C-sim fused vs unfused: bit-exact on 48 inputs" in out
