"""onnx_fuse.fuse, the notebook entry point: the same fused graph and report as the CLI, from a file or from the
objects a notebook holds (a Keras model, an onnx.ModelProto, arrays), writing nothing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import MODELS
from onnx_fuse import Options, fuse, run
from onnx_fuse.errors import InputError


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto, x: np.ndarray) -> None:
    """Same ops, same weights, same outputs (tf2onnx numbers its tensor names per process, so names may differ)."""
    from onnx_fuse.verify import run_onnx

    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    weights = [sorted((w.shape, w.tobytes()) for w in map(numpy_helper.to_array, m.graph.initializer)) for m in (a, b)]
    assert weights[0] == weights[1]
    outputs = [run_onnx(m, {m.graph.input[0].name: x})[0] for m in (a, b)]
    assert np.array_equal(outputs[0], outputs[1])


def test_fuse_gives_what_the_cli_writes_from_a_file_a_keras_object_and_a_modelproto(tmp_path):
    import keras

    data = np.load(MODELS / "digits_cnn.npz")["x"]
    written = run(MODELS / "digits_cnn.h5", tmp_path / "cli.onnx", Options(data=MODELS / "digits_cnn.npz"))
    from_file = fuse(MODELS / "digits_cnn.h5", data=MODELS / "digits_cnn.npz")
    from_object = fuse(keras.models.load_model(MODELS / "digits_cnn.h5", compile=False), data=data)
    for result in (from_file, from_object):
        same_graph(result.model, onnx.load(tmp_path / "cli.onnx"), data)
        assert result.output is None and result.fusion.by_op == written.fusion.by_op == {"ConvRelu": 2}
        assert [(p.name, p.samples, p.max_abs_err) for p in result.parity] == \
            [(p.name, p.samples, p.max_abs_err) for p in written.parity]
    assert from_object.summary().splitlines()[0] == "<keras model 'digits_cnn'> -> (in memory)"
    assert "parity onnx vs fused: max abs err 0 on 116 inputs (exact) ok" in from_object.summary()
    assert list(tmp_path.iterdir()) == [tmp_path / "cli.onnx"]  # fuse() wrote nothing

    proto = onnx.load(tmp_path / "cli.onnx")
    before = proto.SerializeToString()
    again = fuse(proto, samples=4)  # an already fused graph: nothing more to fuse, the file's functions run
    assert again.fusion.pairs == 0 and all(p.ok for p in again.parity)
    assert proto.SerializeToString() == before  # the caller's ModelProto is never changed


def test_fuse_refuses_what_the_cli_refuses_in_one_line(tmp_path):
    with pytest.raises(InputError, match="input file not found"):
        fuse(tmp_path / "missing.h5")
    with pytest.raises(InputError, match="cannot fuse a dict"):
        fuse({"not": "a model"})
    with pytest.raises(InputError, match=r"data for 'pixels' has shape \(3, 5\)"):
        fuse(MODELS / "digits_mlp.h5", data=np.zeros((3, 5), np.float32))
    with pytest.raises(InputError, match="complex"):
        fuse(MODELS / "digits_mlp.h5", data=np.zeros((3, 64), np.complex64))
