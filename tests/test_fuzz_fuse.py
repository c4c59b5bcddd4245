"""Property-based: random Conv/Relu/Add/Sigmoid graphs with fan-out and extra graph outputs.

For every generated graph: the fused graph is bit-identical in onnxruntime, exactly the legal pairs are fused
(counted independently from the original graph), and fusing again changes nothing.
FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz_fuse.py  runs the long campaign on demand.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from conftest import make_model
from onnx_fuse.fuse import fuse
from onnx_fuse.verify import run_onnx

C, H = 3, 5
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

conv_args = (st.sampled_from([1, 3]), st.booleans())
step = st.one_of(
    st.tuples(st.just("conv"), *conv_args),
    st.tuples(st.just("conv"), *conv_args, st.just("relu")),  # a ready pair, so most graphs have several
    st.tuples(st.just("relu")),
    st.tuples(st.just("sigmoid")),
    st.tuples(st.just("add"), st.integers(min_value=0, max_value=1000)),  # skip connection to an earlier tensor
    st.tuples(st.just("branch")),  # fan-out: the current tensor also feeds a side Sigmoid that becomes an output
    st.tuples(st.just("output")),  # the current tensor also becomes a graph output
)


def build(steps: list[tuple], seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits, outputs = [], [], {}
    tensors, current = ["x"], "x"
    for i, (kind, *args) in enumerate(steps):
        out = f"t{i}"
        if kind == "conv":
            k, bias, *then = args
            w = numpy_helper.from_array(rng.standard_normal((C, C, k, k)).astype(np.float32), f"w{i}")
            inputs = [current, w.name]
            inits.append(w)
            if bias:
                inits.append(numpy_helper.from_array(rng.standard_normal(C).astype(np.float32), f"b{i}"))
                inputs.append(f"b{i}")
            p = k // 2
            nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[k, k], pads=[p] * 4))
            if then:
                nodes.append(helper.make_node("Relu", [out], [f"{out}r"]))
                tensors.append(out)
                out = f"{out}r"
        elif kind in ("relu", "sigmoid"):
            nodes.append(helper.make_node(kind.capitalize(), [current], [out]))
        elif kind == "add":
            nodes.append(helper.make_node("Add", [current, tensors[args[0] % len(tensors)]], [out]))
        elif kind == "branch":
            nodes.append(helper.make_node("Sigmoid", [current], [f"side{i}"]))
            outputs[f"side{i}"] = [1, C, H, H]
            continue
        else:  # output
            if current != "x":
                outputs[current] = [1, C, H, H]
            continue
        tensors.append(out)
        current = out
    outputs[current] = [1, C, H, H]
    if current == "x":
        nodes.append(helper.make_node("Identity", ["x"], ["y"]))
        outputs = {"y": [1, C, H, H]}
    return make_model(nodes, inits, {"x": [1, C, H, H]}, outputs)


def legal_pairs(model: onnx.ModelProto) -> int:
    consumers = Counter(name for node in model.graph.node for name in node.input)
    producers = {node.output[0]: node for node in model.graph.node}
    graph_outputs = {o.name for o in model.graph.output}
    return sum(
        1
        for node in model.graph.node
        if node.op_type == "Relu"
        and (conv := producers.get(node.input[0])) is not None
        and conv.op_type == "Conv"
        and consumers[conv.output[0]] == 1
        and conv.output[0] not in graph_outputs
    )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12), seed=st.integers(0, 2**16))
def test_fusion_properties(steps, seed):
    model = build(steps, seed)
    onnx.checker.check_model(model, full_check=True)
    fused, report = fuse(model)
    assert report.pairs == legal_pairs(model)
    assert [n.op_type for n in fused.graph.node].count("Conv") == [n.op_type for n in model.graph.node].count("Conv") - report.pairs
    feeds = {"x": np.random.default_rng(seed).standard_normal((2, C, H, H)).astype(np.float32)}
    names_a = [o.name for o in model.graph.output]
    names_b = [o.name for o in fused.graph.output]
    assert names_a == names_b
    for a, b in zip(run_onnx(model, feeds), run_onnx(fused, feeds)):
        assert np.array_equal(a, b)
    again, second = fuse(fused)
    assert second.pairs == 0 and [n.op_type for n in again.graph.node] == [n.op_type for n in fused.graph.node]
