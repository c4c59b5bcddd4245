"""An input ONNX file that onnxruntime itself cannot run is refused as the input's fault, before any pass of ours,
naming the node and onnxruntime's reason."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse.cli import main


def ir3_dense_bn(channels_in_scale: int) -> onnx.ModelProto:
    """An IR-3, opset-8 Dense -> BN -> ReLU (Gemm -> Unsqueeze -> BatchNormalization -> Squeeze -> Relu), every
    initializer also a graph input; the BN's scale has `channels_in_scale` entries for 4 channels."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(np.ones(channels_in_scale, np.float32), "scale"),
        *(
            numpy_helper.from_array(np.full(4, v, np.float32), n)
            for n, v in [("bias", 0.1), ("mean", 0.2), ("var", 1.5)]
        ),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="dense"),
        helper.make_node("Unsqueeze", ["g"], ["u"], axes=[2]),
        helper.make_node("BatchNormalization", ["u", "scale", "bias", "mean", "var"], ["n"], name="batch_norm"),
        helper.make_node("Squeeze", ["n"], ["s"], axes=[2]),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])]
    inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = helper.make_graph(
        nodes, "ir3", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    onnx.checker.check_model(model)  # the checker accepts it: only running it shows the fault
    return model


def test_input_onnxruntime_cannot_run_is_refused_as_the_input(tmp_path, capsys):
    bad = tmp_path / "three_layer_bn.onnx"
    onnx.save(ir3_dense_bn(channels_in_scale=1), str(bad))
    assert main([str(bad), str(tmp_path / "out.onnx"), "-q"]) == 2
    run = capsys.readouterr()
    assert run.out == ""
    assert run.err == (
        f"onnx-fuse: error: {bad} as given does not run in onnxruntime: node 'batch_norm' (BatchNormalization): "
        "Invalid input scale: 0th dimension != 4\n"
    )
    assert not (tmp_path / "out.onnx").exists()


def test_the_same_file_with_consistent_shapes_goes_through(tmp_path, capsys):
    """The negative control: only the BN's scale differs, and the file fuses with parity."""
    good = tmp_path / "three_layer_bn.onnx"
    onnx.save(ir3_dense_bn(channels_in_scale=4), str(good))
    assert main([str(good), str(tmp_path / "out.onnx"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "parity input onnx vs onnx" in out and "1 Dense->Relu pair" in out
