"""fold_constants skips onnxslim (1.3 ms per node of Python) only when a linear scan proves it has nothing to do."""

from __future__ import annotations

import onnx
import onnxslim
import pytest
from onnx import helper

from conftest import conv_init, make_model, vec_init
from onnx_fuse.normalise import fold_constants


def plain_chain() -> onnx.ModelProto:
    return make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        ],
        [conv_init("w", 4, 3), vec_init("b", 4)],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 4, 4, 4]},
    )


def test_plain_layers_skip_onnxslim_with_the_same_result():
    model = plain_chain()
    assert not fold_constants.something_to_fold(model)
    out, changes = fold_constants.apply(model)
    slimmed = onnxslim.slim(model, skip_optimizations=fold_constants.SKIPPED_OPTIMIZATIONS)
    assert changes == [] and list(out.graph.node) == list(slimmed.graph.node)
    assert list(out.graph.initializer) == list(slimmed.graph.initializer)
    outputs = {v.name for v in model.graph.output}
    shapes = {v.name: v.type for v in slimmed.graph.value_info if v.name not in outputs}
    assert {v.name: v.type for v in out.graph.value_info} == shapes  # later passes read the intermediate shapes


def with_identity(model):
    node = model.graph.node[1]
    node.input[0] = "i"
    model.graph.node.insert(1, helper.make_node("Identity", ["c"], ["i"]))


def unused_initializer(model):
    model.graph.initializer.append(vec_init("unused", 4))


def dead_node(model):
    model.graph.node.append(helper.make_node("Relu", ["c"], ["dead"]))


def duplicate_node(model):
    model.graph.node.insert(2, helper.make_node("Relu", ["c"], ["r2"]))
    model.graph.output.append(helper.make_tensor_value_info("r2", onnx.TensorProto.FLOAT, [1, 4, 8, 8]))


def unsorted(model):
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))


def initializer_as_input(model):
    model.graph.input.append(helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [4]))


@pytest.mark.parametrize(
    "edit", [with_identity, unused_initializer, dead_node, duplicate_node, unsorted, initializer_as_input]
)
def test_anything_onnxslim_would_change_runs_it(edit):
    model = plain_chain()
    edit(model)
    assert fold_constants.something_to_fold(model)
