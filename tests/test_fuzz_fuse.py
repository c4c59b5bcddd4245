"""Property-based: random Conv/activation/Add graphs with fan-out, extra graph outputs and an optional Dense tail;
activations are drawn from every entry of the pattern table (Relu, LeakyRelu, Clip) and from one it lacks (Sigmoid);
qonnx Quant nodes on weights, between conv and activation, and on any tensor (e.g. after a Relu).

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

from conftest import make_model, op_types
from onnx_fuse import qonnx_ops
from onnx_fuse.fusion import fuse
from onnx_fuse.patterns import ACTIVATION_OPS, PRODUCER_OPS, QONNX_DOMAIN
from onnx_fuse.verify import run_onnx

C, H = 3, 5
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

activation = st.sampled_from([*ACTIVATION_OPS, "Sigmoid"])
# kernel, bias, weight through a qonnx Quant (QONNX's quantized weights)
conv_args = (st.sampled_from([1, 3]), st.booleans(), st.booleans())
step = st.one_of(
    st.tuples(st.just("conv"), *conv_args),
    # a ready pair, so most graphs have several; the bool puts a qonnx Quant between conv and activation
    st.tuples(st.just("conv"), *conv_args, activation, st.booleans()),
    st.tuples(st.just("act"), activation),
    st.tuples(st.just("quant"), st.booleans()),  # a Quant (signed or not) on the current tensor, e.g. after a Relu
    st.tuples(st.just("add"), st.integers(min_value=0, max_value=1000)),  # skip connection to an earlier tensor
    st.tuples(st.just("branch")),  # fan-out: the current tensor also feeds a side Sigmoid that becomes an output
    st.tuples(st.just("output")),  # the current tensor also becomes a graph output
)


def activation_node(op: str, src: str, out: str, inits: list) -> onnx.NodeProto:
    if op == "LeakyRelu":
        return helper.make_node(op, [src], [out], alpha=0.2)
    if op == "Clip":
        inits += [numpy_helper.from_array(np.float32(-0.5), f"{out}_lo"), numpy_helper.from_array(np.float32(1.5), f"{out}_hi")]
        return helper.make_node(op, [src, f"{out}_lo", f"{out}_hi"], [out])
    return helper.make_node(op, [src], [out])


def quant_node(src: str, out: str, inits: list, signed: bool = True) -> onnx.NodeProto:
    """qonnx Quant with a power-of-2 scale, 8 bits."""
    inits += [numpy_helper.from_array(np.float32(0.125), f"{out}_s"), numpy_helper.from_array(np.float32(0), f"{out}_z"),
              numpy_helper.from_array(np.float32(8), f"{out}_b")]
    return helper.make_node("Quant", [src, f"{out}_s", f"{out}_z", f"{out}_b"], [out], domain=QONNX_DOMAIN,
                            signed=int(signed), narrow=0, rounding_mode="ROUND")


def build(steps: list[tuple], tail: str | None, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits, outputs = [], [], {}
    tensors, current = ["x"], "x"
    for i, (kind, *args) in enumerate(steps):
        out = f"t{i}"
        if kind == "conv":
            k, bias, quantized_weight, *then = args
            w = numpy_helper.from_array(rng.standard_normal((C, C, k, k)).astype(np.float32), f"w{i}")
            inputs = [current, w.name]
            inits.append(w)
            if quantized_weight:
                nodes.append(quant_node(w.name, f"w{i}q", inits))
                inputs[1] = f"w{i}q"
            if bias:
                inits.append(numpy_helper.from_array(rng.standard_normal(C).astype(np.float32), f"b{i}"))
                inputs.append(f"b{i}")
            p = k // 2
            nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[k, k], pads=[p] * 4))
            if then:
                act, quant_between = then
                if quant_between:
                    nodes.append(quant_node(out, f"{out}q", inits))
                    out = f"{out}q"
                nodes.append(activation_node(act, out, f"{out}r", inits))
                tensors.append(out)
                out = f"{out}r"
        elif kind == "quant":
            nodes.append(quant_node(current, out, inits, signed=args[0]))
        elif kind == "act":
            nodes.append(activation_node(args[0], current, out, inits))
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
    if tail is not None:  # Flatten -> Dense (Gemm with constant weights) -> activation
        w = numpy_helper.from_array(rng.standard_normal((C * H * H, 4)).astype(np.float32), "dense_w")
        inits.append(w)
        nodes += [
            helper.make_node("Flatten", [current], ["flat"]),
            helper.make_node("Gemm", ["flat", w.name], ["dense"]),
            activation_node(tail, "dense", "y", inits),
        ]
        outputs["y"] = [1, 4]
    else:
        outputs[current] = [1, C, H, H]
        if current == "x":
            nodes.append(helper.make_node("Identity", ["x"], ["y"]))
            outputs = {"y": [1, C, H, H]}
    # the qonnx opset import and the Quant function that lets onnxruntime run it, as for a QONNX file read from disk
    return qonnx_ops.prepare(make_model(nodes, inits, {"x": [1, C, H, H]}, outputs))


def legal_pairs(model: onnx.ModelProto) -> Counter:
    """Fused op -> count, from the generated graph alone: a table activation whose only input is a Conv or Gemm
    (constant bounds and weights by construction) that has no other consumer and is no graph output."""
    consumers = Counter(name for node in model.graph.node for name in node.input)
    producers = {node.output[0]: node for node in model.graph.node}
    graph_outputs = {o.name for o in model.graph.output}

    def only_input(node: onnx.NodeProto) -> onnx.NodeProto | None:
        """The producer of node's first input, if that value feeds nothing else and is no graph output."""
        producer = producers.get(node.input[0])
        ok = producer is not None and consumers[producer.output[0]] == 1 and producer.output[0] not in graph_outputs
        return producer if ok else None

    pairs = Counter()
    for node in (n for n in model.graph.node if n.op_type in ACTIVATION_OPS):
        producer, middle = only_input(node), ""
        if producer is not None and producer.op_type == "Quant":
            producer, middle = only_input(producer), "Quant"
        if producer is not None and producer.op_type in PRODUCER_OPS:
            pairs[PRODUCER_OPS[producer.op_type].prefix + middle + node.op_type] += 1
    return pairs


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12), tail=st.one_of(st.none(), activation), seed=st.integers(0, 2**16))
def test_fusion_properties(steps, tail, seed):
    model = build(steps, tail, seed)
    onnx.checker.check_model(model, full_check=True)
    fused, report = fuse(model)
    expected = legal_pairs(model)
    assert report.pairs == sum(expected.values()) and report.by_op == dict(expected)
    before, after = Counter(op_types(model)), Counter(op_types(fused))
    assert after["Conv"] + after["Gemm"] == before["Conv"] + before["Gemm"] - report.pairs
    middle_quants = sum(count for op, count in report.by_op.items() if "Quant" in op)
    assert after["Quant"] == before["Quant"] - middle_quants
    feeds = {"x": np.random.default_rng(seed).standard_normal((2, C, H, H)).astype(np.float32)}
    names_a = [o.name for o in model.graph.output]
    names_b = [o.name for o in fused.graph.output]
    assert names_a == names_b
    for a, b in zip(run_onnx(model, feeds), run_onnx(fused, feeds)):
        assert np.array_equal(a, b)
    again, second = fuse(fused)
    assert second.pairs == 0 and [n.op_type for n in again.graph.node] == [n.op_type for n in fused.graph.node]
