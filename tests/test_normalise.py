"""Each normalisation pass on small hand-built graphs: what it changes, what it refuses, and that numbers hold."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import conv_init, make_model, op_types, vec_init
from onnx_fuse.errors import InputError
from onnx_fuse.fusion import fuse
from onnx_fuse.normalise import (
    check_and_infer,
    conv1d,
    explicit_conv_attrs,
    fix_batch,
    fold_constants,
    layout_reshape,
    matmul_as_gemm,
    normalise,
    relu_spellings,
)
from onnx_fuse.verify import run_onnx


def feeds(shape=(3, 3, 8, 8)) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def valid_conv_relu(batch="N", **conv_attrs) -> onnx.ModelProto:
    """tf2onnx's 'valid' conv: kernel_shape only, no pads/strides/dilations."""
    return make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], **conv_attrs),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        [conv_init("w", 4, 3), vec_init("b", 4)],
        {"x": [batch, 3, 8, 8]},
        {"y": [batch, 4, None, None]},
    )


def test_fix_batch_sets_dynamic_batch_to_one():
    model, changes = fix_batch.apply(valid_conv_relu())
    assert changes == ["input 'x': batch 'N' -> 1"]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]


def test_fix_batch_leaves_static_graph_alone():
    model = valid_conv_relu(batch=1)
    out, changes = fix_batch.apply(model)
    assert changes == [] and out is model


def test_fix_batch_refuses_dynamic_spatial_dims():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [], {"x": [1, 3, "H", 8]}, {"y": [1, 3, "H", 8]})
    with pytest.raises(InputError, match="dynamic dimensions"):
        fix_batch.apply(model)


def test_explicit_conv_attrs_fills_valid_conv_and_keeps_numbers():
    model = valid_conv_relu(batch=1)
    out, changes = explicit_conv_attrs.apply(model)
    assert changes == ["Conv 'conv': set strides, pads, dilations, group"]
    assert attrs(out.graph.node[0]) == {
        "kernel_shape": [3, 3], "strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1], "group": 1
    }
    assert "pads" not in attrs(model.graph.node[0])  # the input graph is not edited in place
    f = feeds((1, 3, 8, 8))
    assert np.array_equal(run_onnx(model, f)[0], run_onnx(out, f)[0])


@pytest.mark.parametrize(
    "auto_pad, strides, pads",
    [("SAME_UPPER", [1, 1], [1, 1, 1, 1]), ("SAME_UPPER", [2, 2], [0, 0, 1, 1]), ("SAME_LOWER", [2, 2], [1, 1, 0, 0]),
     ("VALID", [2, 2], [0, 0, 0, 0])],
)
def test_explicit_conv_attrs_resolves_auto_pad(auto_pad, strides, pads):
    model = valid_conv_relu(batch=1, auto_pad=auto_pad, strides=strides)
    out, _ = explicit_conv_attrs.apply(model)
    got = attrs(out.graph.node[0])
    assert "auto_pad" not in got and got["pads"] == pads
    f = feeds((1, 3, 8, 8))
    assert np.array_equal(run_onnx(model, f)[0], run_onnx(out, f)[0])


def test_explicit_conv_attrs_covers_pools():
    model = make_model(
        [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])],
        [],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 3, 4, 4]},
    )
    out, changes = explicit_conv_attrs.apply(model)
    assert changes == ["MaxPool 'pool': set pads"]
    assert attrs(out.graph.node[0])["pads"] == [0, 0, 0, 0]


def keras3_batchnorm_graph() -> onnx.ModelProto:
    """Keras 3 exports BatchNorm as Mul + Add between the Conv and its Relu."""
    scale = helper.make_tensor("scale", 1, [1, 4, 1, 1], [0.5, 2.0, -1.0, 1.5])
    shift = helper.make_tensor("shift", 1, [1, 4, 1, 1], [0.1, -0.2, 0.3, 0.0])
    return make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Mul", ["c", "scale"], ["m"]),
            helper.make_node("Add", ["m", "shift"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"]),
        ],
        [conv_init("w", 4, 3), vec_init("b", 4), scale, shift],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 4, 8, 8]},
    )


def test_fold_constants_folds_mul_add_batchnorm_into_conv():
    model = keras3_batchnorm_graph()
    out, changes = fold_constants.apply(model)
    assert op_types(out) == ["Conv", "Relu"]
    assert changes == ["Add: 1 -> 0", "Mul: 1 -> 0"]
    f = feeds((1, 3, 8, 8))
    np.testing.assert_allclose(run_onnx(model, f)[0], run_onnx(out, f)[0], rtol=1e-5, atol=1e-5)


def test_fold_constants_folds_batchnormalization_node():
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"]),
            helper.make_node("Relu", ["n"], ["y"]),
        ],
        [conv_init("w", 4, 3), vec_init("g", 4, 3), vec_init("b", 4), vec_init("m", 4, 4),
         helper.make_tensor("v", 1, [4], [1.0, 2.0, 0.5, 3.0])],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 4, 8, 8]},
    )
    out, _ = fold_constants.apply(model)
    assert op_types(out) == ["Conv", "Relu"]
    f = feeds((1, 3, 8, 8))
    np.testing.assert_allclose(run_onnx(model, f)[0], run_onnx(out, f)[0], rtol=1e-5, atol=1e-5)


def test_check_and_infer_sets_static_output_shapes():
    model, _ = fix_batch.apply(valid_conv_relu())
    model, _ = explicit_conv_attrs.apply(model)
    out, _ = check_and_infer.apply(model)
    assert [d.dim_value for d in out.graph.output[0].type.tensor_type.shape.dim] == [1, 4, 6, 6]


def test_check_and_infer_refuses_a_broken_graph():
    model = make_model([helper.make_node("Relu", ["missing"], ["y"])], [], {"x": [1, 3]}, {"y": [1, 3]})
    with pytest.raises(InputError, match="checker"):
        check_and_infer.apply(model)


def test_normalise_then_fuse_reaches_the_pair_behind_batchnorm():
    model, reports = normalise(keras3_batchnorm_graph())
    assert [r.name for r in reports] == [
        "upgrade_opset", "initializer_inputs", "fixed_batch", "fix_batch", "qdq_to_quant", "batchnorm_sandwich",
        "fold_constants", "conv1d", "reduce_mean", "upsampling", "relu_spellings", "layout_reshape", "matmul_as_gemm",
        "dense_batchnorm", "explicit_conv_attrs",
        "check_and_infer",
    ]
    fused, report = fuse(model)
    assert report.pairs == 1 and op_types(fused) == ["ConvRelu"]


def test_normalise_of_dynamic_batch_onnx_gives_a_static_checked_graph():
    model, _ = normalise(valid_conv_relu())
    shape = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert shape == [1, 4, 6, 6]
    onnx.checker.check_model(model, full_check=True)


def conv1d_as_exported(bias_shape=(1, 4, 1)) -> onnx.ModelProto:
    """tf2onnx's Keras Conv1D on an NLC input: Unsqueeze -> Transpose -> Conv(1x3) -> Squeeze -> Add(bias) -> Relu."""
    n = int(np.prod(bias_shape))
    w = onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 1, 3)).astype(np.float32), "w")
    return make_model(
        [
            helper.make_node("Unsqueeze", ["x", "ax1"], ["u"]),
            helper.make_node("Transpose", ["u"], ["t"], perm=[0, 3, 1, 2]),
            helper.make_node("Conv", ["t", "w"], ["c"], kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
            helper.make_node("Squeeze", ["c", "ax2"], ["s"]),
            helper.make_node("Add", ["s", "bias"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"]),
        ],
        [w, helper.make_tensor("ax1", onnx.TensorProto.INT64, [1], [1]),
         helper.make_tensor("ax2", onnx.TensorProto.INT64, [1], [2]),
         helper.make_tensor("bias", 1, list(bias_shape), np.linspace(-1, 1, n).tolist())],
        {"x": [1, 8, 3]},
        {"y": [1, 4, 8]},
    )


def test_conv1d_becomes_a_1d_conv_with_bias_next_to_its_relu():
    model = conv1d_as_exported()
    out, changes = conv1d.apply(model)
    assert changes and op_types(out) == ["Transpose", "Conv", "Relu"]
    conv = out.graph.node[1]
    assert attrs(conv) == {"kernel_shape": [3], "pads": [1, 1]} and len(conv.input) == 3
    weight = next(i for i in out.graph.initializer if i.name == conv.input[1])
    assert list(weight.dims) == [4, 3, 3]
    f = {"x": np.random.default_rng(1).standard_normal((2, 8, 3)).astype(np.float32)}
    np.testing.assert_allclose(run_onnx(out, f)[0], run_onnx(model, f)[0], rtol=1e-6, atol=1e-6)
    assert fuse(normalise(out)[0])[1].pairs == 1


def test_conv1d_leaves_an_add_along_the_length_alone():
    out, _ = conv1d.apply(conv1d_as_exported(bias_shape=(1, 1, 8)))
    assert op_types(out) == ["Transpose", "Conv", "Add", "Relu"]


@pytest.mark.parametrize(
    "spelling",
    [
        lambda: helper.make_node("Max", ["c", "zero"], ["y"]),
        lambda: helper.make_node("Max", ["zero", "c"], ["y"]),
        lambda: helper.make_node("Clip", ["c", "zero"], ["y"]),
    ],
    ids=["Max(x,0)", "Max(0,x)", "Clip(x,0)"],
)
def test_relu_spellings_become_relu_and_fuse(spelling):
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), spelling()],
        [conv_init("w", 4, 3), helper.make_tensor("zero", 1, [], [0.0])],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 4, 8, 8]},
    )
    out, changes = relu_spellings.apply(model)
    assert changes and op_types(out) == ["Conv", "Relu"]
    f = feeds((2, 3, 8, 8))
    assert np.array_equal(run_onnx(out, f)[0], run_onnx(model, f)[0])
    assert fuse(out)[1].pairs == 1


@pytest.mark.parametrize(
    "node",
    [
        helper.make_node("Max", ["c", "half"], ["y"]),
        helper.make_node("Clip", ["c", "zero", "six"], ["y"]),
        helper.make_node("Min", ["c", "zero"], ["y"]),
    ],
    ids=["Max(x,0.5)", "Clip(x,0,6)", "Min(x,0)"],
)
def test_other_clamps_are_not_relu(node):
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), node],
        [conv_init("w", 4, 3), helper.make_tensor("zero", 1, [], [0.0]), helper.make_tensor("half", 1, [], [0.5]),
         helper.make_tensor("six", 1, [], [6.0])],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 4, 8, 8]},
    )
    out, changes = relu_spellings.apply(model)
    assert changes == [] and op_types(out) == op_types(model)


def reshape_model(in_shape: list[int], out_shape: list[int]) -> onnx.ModelProto:
    model = make_model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [helper.make_tensor("shape", onnx.TensorProto.INT64, [len(out_shape)], out_shape)],
        {"x": in_shape},
        {"y": out_shape},
    )
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize(
    "in_shape, out_shape, perm",
    [([1, 8, 8, 1], [1, 1, 8, 8], [0, 3, 1, 2]), ([1, 1, 8, 8], [1, 8, 8, 1], [0, 2, 3, 1]),
     ([1, 8, 1], [1, 1, 8], [0, 2, 1])],
)
def test_layout_reshape_becomes_transpose(in_shape, out_shape, perm):
    model = reshape_model(in_shape, out_shape)
    out, changes = layout_reshape.apply(model)
    assert changes and op_types(out) == ["Transpose"]
    assert attrs(out.graph.node[0])["perm"] == perm
    f = {"x": np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)}
    assert np.array_equal(run_onnx(out, f)[0], run_onnx(model, f)[0])


@pytest.mark.parametrize(
    "in_shape, out_shape", [([1, 2, 3, 4], [1, 4, 2, 3]), ([1, 8, 8, 2], [1, 2, 8, 8]), ([1, 8, 8, 1], [1, 64])]
)
def test_real_reshapes_stay(in_shape, out_shape):
    out, changes = layout_reshape.apply(reshape_model(in_shape, out_shape))
    assert changes == [] and op_types(out) == ["Reshape"]


def test_matmul_with_constant_weights_becomes_gemm_with_zero_bias():
    w = onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), "w")
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"), helper.make_node("Relu", ["m"], ["y"])],
        [w], {"x": [1, 6]}, {"y": [1, 4]},
    )
    model = onnx.shape_inference.infer_shapes(model)
    out, changes = matmul_as_gemm.apply(model)
    assert changes and op_types(out) == ["Gemm", "Relu"] and out.graph.node[0].name == "fc"
    assert len(out.graph.node[0].input) == 3  # qonnx's GemmToMatMul needs the bias input
    f = {"x": np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)}
    np.testing.assert_allclose(run_onnx(out, f)[0], run_onnx(model, f)[0], rtol=1e-6, atol=1e-6)
    assert fuse(out)[1].by_op["DenseRelu"] == 1


def test_matmul_of_two_activations_stays():
    model = make_model(
        [helper.make_node("MatMul", ["x", "z"], ["y"])], [], {"x": [1, 6], "z": [6, 4]}, {"y": [1, 4]}
    )
    out, changes = matmul_as_gemm.apply(onnx.shape_inference.infer_shapes(model))
    assert changes == [] and op_types(out) == ["MatMul"]
