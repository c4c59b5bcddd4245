"""The ConvRelu rule: what it fuses, what it must never fuse, and that the fused file runs unchanged in ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import conv_init, make_model, op_types, vec_init
from onnx_fuse.fusion import FUSED_DOMAIN, fuse
from onnx_fuse.verify import run_onnx

X = {"x": [1, 3, 8, 8]}


def conv(inputs, output, **attrs):
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1], "dilations": [1, 1], **attrs}
    return helper.make_node("Conv", inputs, [output], name=f"conv_{output}", **attrs)


def assert_same_outputs(a: onnx.ModelProto, b: onnx.ModelProto, samples: int = 4) -> None:
    feeds = {"x": np.random.default_rng(0).standard_normal((samples, 3, 8, 8)).astype(np.float32)}
    for ea, eb in zip(run_onnx(a, feeds), run_onnx(b, feeds)):
        assert np.array_equal(ea, eb)


def two_pairs() -> onnx.ModelProto:
    return make_model(
        [
            conv(["x", "w1", "b1"], "c1"),
            helper.make_node("Relu", ["c1"], ["r1"]),
            conv(["r1", "w2"], "c2", strides=[2, 2], pads=[0, 0, 1, 1]),
            helper.make_node("Relu", ["c2"], ["y"]),
        ],
        [conv_init("w1", 4, 3), vec_init("b1", 4), conv_init("w2", 5, 4, seed=2)],
        X,
        {"y": [1, 5, 4, 4]},
    )


def test_fuses_conv_relu_with_and_without_bias():
    model = two_pairs()
    fused, report = fuse(model)
    assert report.pairs == 2
    assert op_types(fused) == ["ConvRelu", "ConvRelu"]
    assert all(n.domain == FUSED_DOMAIN for n in fused.graph.node)
    assert [len(n.input) for n in fused.graph.node] == [3, 2]
    assert report.fused_nodes == ["conv_c1", "conv_c2"]  # the Conv's names survive
    # one function serves every call: the attributes travel on the node
    assert [(f.domain, f.name) for f in fused.functions] == [(FUSED_DOMAIN, "ConvRelu")]
    onnx.checker.check_model(fused, full_check=True)
    assert_same_outputs(model, fused)


def test_value_info_names_only_intermediate_values():
    fused, _ = fuse(two_pairs())
    declared = {t.name for t in fused.graph.initializer} | {v.name for v in fused.graph.input}
    names = [v.name for v in fused.graph.value_info]
    assert not declared & set(names) and len(names) == len(set(names))


def test_fused_node_carries_every_conv_attribute():
    fused, _ = fuse(two_pairs())
    attrs = {a.name: helper.get_attribute_value(a) for a in fused.graph.node[1].attribute}
    assert attrs == {"kernel_shape": [3, 3], "pads": [0, 0, 1, 1], "strides": [2, 2], "dilations": [1, 1]}


def test_shape_inference_sees_each_call_with_its_own_attributes():
    fused, _ = fuse(two_pairs())
    inferred = onnx.shape_inference.infer_shapes(fused, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    assert shapes["r1"] == [1, 4, 8, 8]


def test_fusing_a_fused_graph_changes_nothing():
    once, _ = fuse(two_pairs())
    twice, report = fuse(once)
    assert report.pairs == 0
    assert twice.graph == once.graph
    assert len(twice.functions) == 1


def test_grouped_and_dilated_conv_fuses_with_parity():
    model = make_model(
        [conv(["x", "w"], "c", group=3, dilations=[2, 2], pads=[2, 2, 2, 2]), helper.make_node("Relu", ["c"], ["y"])],
        [conv_init("w", 6, 1)],
        X,
        {"y": [1, 6, 8, 8]},
    )
    fused, report = fuse(model)
    assert report.pairs == 1
    assert_same_outputs(model, fused)


def never_fused_cases() -> dict[str, onnx.ModelProto]:
    w, b = conv_init("w", 3, 3), vec_init("b", 3)
    relu = helper.make_node("Relu", ["c"], ["y"])
    return {
        "fan-out": make_model(
            [conv(["x", "w", "b"], "c"), relu, helper.make_node("Sigmoid", ["c"], ["s"])],
            [w, b],
            X,
            {"y": [1, 3, 8, 8], "s": [1, 3, 8, 8]},
        ),
        "graph output": make_model([conv(["x", "w", "b"], "c"), relu], [w, b], X, {"y": [1, 3, 8, 8], "c": [1, 3, 8, 8]}),
        "residual add": make_model(
            [conv(["x", "w", "b"], "c0"), helper.make_node("Add", ["c0", "x"], ["c"]), relu],
            [w, b],
            X,
            {"y": [1, 3, 8, 8]},
        ),
        "residual conv-bn-add": make_model(
            [
                conv(["x", "w"], "c0"),
                helper.make_node("BatchNormalization", ["c0", "g", "b", "m", "v"], ["c1"]),
                helper.make_node("Add", ["c1", "x"], ["c"]),
                relu,
            ],
            [w, b, vec_init("g", 3, 3), vec_init("m", 3, 4), helper.make_tensor("v", 1, [3], [1.0, 2.0, 3.0])],
            X,
            {"y": [1, 3, 8, 8]},
        ),
        "sigmoid": make_model(
            [conv(["x", "w", "b"], "c"), helper.make_node("Sigmoid", ["c"], ["y"])], [w, b], X, {"y": [1, 3, 8, 8]}
        ),
        "clip with a runtime bound": make_model(
            [conv(["x", "w", "b"], "c"), helper.make_node("Clip", ["c", "lo", "x"], ["y"])],
            [w, b, helper.make_tensor("lo", 1, [], [0.0])],
            X,
            {"y": [1, 3, 8, 8]},
        ),
        "clip with empty bounds": make_model(
            [conv(["x", "w", "b"], "c"), helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
            [w, b, helper.make_tensor("lo", 1, [], [6.0]), helper.make_tensor("hi", 1, [], [0.0])],
            X,
            {"y": [1, 3, 8, 8]},
        ),
        "relu of a non-conv": make_model(
            [helper.make_node("Sigmoid", ["x"], ["c"]), relu], [], X, {"y": [1, 3, 8, 8]}
        ),
    }


EXPLAINED = {
    "fan-out": "the Conv output has 2 consumers",
    "graph output": "the Conv output is also a graph output",
    "sigmoid": "Sigmoid: only Relu, LeakyRelu, Clip are applied bit-exactly",
    "clip with a runtime bound": "Clip: Clip bounds are not constant scalars",
    "clip with empty bounds": "Clip: Clip bounds (6, 0) are empty",
}


@pytest.mark.parametrize("case", list(never_fused_cases()))
def test_never_fuses(case):
    model = never_fused_cases()[case]
    onnx.checker.check_model(model, full_check=True)
    fused, report = fuse(model)
    assert report.pairs == 0
    # every missed Conv->activation pair is reported with its reason; a Conv -> Add is no pair at all
    assert len(report.left_unfused) == (1 if case in EXPLAINED else 0)
    if case in EXPLAINED:
        assert EXPLAINED[case] in report.left_unfused[0]
    assert FUSED_DOMAIN not in {n.domain for n in fused.graph.node}
    assert op_types(fused) == op_types(model)
    assert not fused.functions


def test_only_the_clean_pair_fuses_in_a_mixed_graph():
    """Conv->Relu (fuse) feeding Conv->Add(skip)->Relu (keep): the residual conv stays a plain Conv."""
    model = make_model(
        [
            conv(["x", "w1", "b1"], "c1"),
            helper.make_node("Relu", ["c1"], ["r1"]),
            conv(["r1", "w2", "b2"], "c2"),
            helper.make_node("Add", ["c2", "r1"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"]),
        ],
        [conv_init("w1", 3, 3), vec_init("b1", 3), conv_init("w2", 3, 3, seed=5), vec_init("b2", 3, 6)],
        X,
        {"y": [1, 3, 8, 8]},
    )
    fused, report = fuse(model)
    assert report.pairs == 1
    assert op_types(fused) == ["ConvRelu", "Conv", "Add", "Relu"]
    assert_same_outputs(model, fused)


def gemm_model(trans_b: int = 0, bias: bool = True, relu_users: int = 1, const_weight: bool = True) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((5, 6) if trans_b else (6, 5)).astype(np.float32)
    inits = [onnx.numpy_helper.from_array(w, "w")] if const_weight else []
    inits += [onnx.numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b")] if bias else []
    inputs = {"x": [1, 6]} if const_weight else {"x": [1, 6], "w": [6, 5]}
    nodes = [
        helper.make_node("Gemm", ["x", "w"] + (["b"] if bias else []), ["g"], name="dense", transB=trans_b),
        helper.make_node("Relu", ["g"], ["y"]),
    ]
    outputs = {"y": [1, 5]}
    if relu_users > 1:
        nodes.append(helper.make_node("Sigmoid", ["g"], ["s"]))
        outputs["s"] = [1, 5]
    return make_model(nodes, inits, inputs, outputs)


@pytest.mark.parametrize("trans_b, bias", [(0, True), (1, True), (0, False)])
def test_dense_relu_fuses_with_exact_parity(trans_b, bias):
    model = gemm_model(trans_b, bias)
    fused, report = fuse(model)
    assert report.pairs == report.by_op["DenseRelu"] == 1
    assert op_types(fused) == ["DenseRelu"] and fused.graph.node[0].name == "dense"
    assert [f.name for f in fused.functions] == ["DenseRelu"]
    onnx.checker.check_model(fused, full_check=True)
    feeds = {"x": np.random.default_rng(8).standard_normal((6, 6)).astype(np.float32)}
    assert np.array_equal(run_onnx(fused, feeds)[0], run_onnx(model, feeds)[0])
    assert fuse(fused)[1].pairs == 0


@pytest.mark.parametrize(
    "model, reason",
    [
        (gemm_model(relu_users=2), "the Gemm output has 2 consumers"),
        (gemm_model(const_weight=False), "weights are not constant"),
    ],
    ids=["fan-out", "runtime weights"],
)
def test_dense_relu_never_fuses(model, reason):
    fused, report = fuse(model)
    assert report.pairs == 0 and "DenseRelu" not in op_types(fused)
    assert len(report.left_unfused) == 1 and reason in report.left_unfused[0]


ACTIVATION_NODES = {
    "Relu": lambda src, out: ([helper.make_node("Relu", [src], [out])], []),
    "LeakyRelu": lambda src, out: ([helper.make_node("LeakyRelu", [src], [out], alpha=0.125)], []),
    "Clip": lambda src, out: (
        [helper.make_node("Clip", [src, f"{out}_lo", f"{out}_hi"], [out])],
        [helper.make_tensor(f"{out}_lo", 1, [], [0.0]), helper.make_tensor(f"{out}_hi", 1, [], [0.75])],
    ),
}


@pytest.mark.parametrize("activation", list(ACTIVATION_NODES))
@pytest.mark.parametrize("bias", [True, False])
def test_every_table_activation_fuses_after_conv_and_dense(activation, bias):
    """Conv -> act -> Flatten -> Gemm -> act: both pairs fuse into the table's ops, with exact ORT parity."""
    act1, consts1 = ACTIVATION_NODES[activation]("c", "a")
    act2, consts2 = ACTIVATION_NODES[activation]("g", "y")
    rng = np.random.default_rng(3)
    dense_w = onnx.numpy_helper.from_array(rng.standard_normal((3 * 8 * 8, 4)).astype(np.float32), "dw")
    model = make_model(
        [conv(["x", "w"] + (["b"] if bias else []), "c"), *act1, helper.make_node("Flatten", ["a"], ["f"]),
         helper.make_node("Gemm", ["f", "dw"], ["g"], name="dense"), *act2],
        [conv_init("w", 3, 3), vec_init("b", 3), dense_w, *consts1, *consts2],
        X,
        {"y": [1, 4]},
    )
    fused, report = fuse(model)
    assert report.pairs == 2 and report.by_op == {f"Conv{activation}": 1, f"Dense{activation}": 1}
    assert op_types(fused) == [f"Conv{activation}", "Flatten", f"Dense{activation}"]
    assert sorted(f.name for f in fused.functions) == [f"Conv{activation}", f"Dense{activation}"]
    onnx.checker.check_model(fused, full_check=True)
    assert_same_outputs(model, fused)
    assert fuse(fused)[1].pairs == 0
