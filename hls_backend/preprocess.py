"""Turn an onnx-fuse file into the channels-last graph hls4ml's ONNX front end reads.

(DenseRelu pairs are found the same way, after GemmToMatMul, and marked for hls4ml by their ReLU's name.)

qonnx knows nothing of `onnx_fuse::ConvRelu`: its shape inference and channels-last conversion leave the custom
node channels-first between Transposes, and hls4ml's conv parser refuses anything not channels-last. So the
function is inlined (plain Conv -> Relu again), the graph goes through hls4ml's documented qonnx recipe, and the
pairs that were fused in the file are fused again afterwards. qonnx renames every node and tensor on the way, so
the pairs are found again by their weights (exact values, allowing the OIHW -> OHWI move qonnx makes).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

from hls_backend.constant_rank import DropLeadingOnesOfConstants
from hls_backend.pooling import ChannelsLastAveragePool

FUSED_DOMAIN = "onnx_fuse"
FUSED_OP = "ConvRelu"
DENSE_OP = "DenseRelu"
# Domain of the re-fused node: says "channels-last already", the way qonnx's own channels-last ops do.
CL_FUSED_DOMAIN = "onnx_fuse.channels_last"
CL_DOMAIN = "qonnx.custom_op.channels_last"
RELU_NAME_ATTR = "relu_name"


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    return onnx.load(str(model))


def fused_weights(model: onnx.ModelProto) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(W, B) of each ConvRelu node, in graph order."""
    inits = {t.name: t for t in model.graph.initializer}

    def value(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    pairs = []
    for node in model.graph.node:
        if node.domain == FUSED_DOMAIN and node.op_type == FUSED_OP:
            w = value(node.input[1])
            if w is None:
                raise ValueError(f"ConvRelu {node.name!r}: weight {node.input[1]!r} is not an initializer")
            b = value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            pairs.append((w, b))
    return pairs


def qonnx_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """hls4ml's documented qonnx recipe, with GemmToMatMul moved before channels-last (qonnx reads any transB
    attribute as true, including tf2onnx's explicit transB=0, unless the Gemm is gone first)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    # onnx-fuse output can carry duplicate value_info entries, which ModelWrapper asserts on; qonnx re-infers
    # every shape anyway.
    del model.graph.value_info[:]
    wrapped = cleanup_model(ModelWrapper(model))
    with warnings.catch_warnings():
        # qonnx warns for any Gemm above opset 9; tf2onnx's opset-13 Gemm (no broadcasting tricks) converts
        # correctly, checked end to end against onnxruntime in tests/test_hls_backend.py.
        warnings.filterwarnings("ignore", message="The GemmToMatMul transformation only offers", category=UserWarning)
        wrapped = wrapped.transform(GemmToMatMul())
    try:
        wrapped = wrapped.transform(ChannelsLastAveragePool())  # qonnx has no channels-last AveragePool
    except ValueError as exc:
        raise UnsupportedModelError(f"not supported on the hls4ml path: {exc}") from exc
    wrapped = wrapped.transform(ConvertToChannelsLastAndClean())
    wrapped = wrapped.transform(DropLeadingOnesOfConstants())  # hls4ml's ApplyAlpha wants batch-free constants
    wrapped = cleanup_model(wrapped)
    return wrapped.model


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a, b)


def _matches(w_cl: np.ndarray, b_cl: np.ndarray | None, w: np.ndarray, b: np.ndarray | None) -> bool:
    w_moved = np.moveaxis(w, 1, -1)  # OIHW -> OHWI, as ConvertToChannelsLast stores it
    bias_ok = _same(b_cl, b) or (b is None and b_cl is not None and not b_cl.any())
    return (_same(w_cl, w) or _same(w_cl, w_moved)) and bias_ok


def only_users(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """node output name -> its single consumer, for outputs with exactly one consumer that are not graph outputs."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    return {name: users[0] for name, users in consumers.items() if len(users) == 1 and name not in outputs}


def refuse(model: onnx.ModelProto, pairs: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[onnx.ModelProto, int]:
    """Replace each channels-last Conv -> Relu that was a ConvRelu in the file by one CL_FUSED_DOMAIN ConvRelu node.

    The node keeps the Conv's name, inputs and attributes, takes the Relu's output, and records the Relu's name so
    the lowered layers are named exactly as in the unfused graph (one hls4ml config serves both).
    """
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    single = only_users(graph)
    todo = list(pairs)
    replaced: dict[str, onnx.NodeProto] = {}
    dropped: set[str] = set()
    for node in graph.node:
        if node.op_type != "Conv" or node.domain != CL_DOMAIN or not todo:
            continue
        relu = single.get(node.output[0])
        if relu is None or relu.op_type != "Relu":
            continue
        w_cl = inits.get(node.input[1])
        b_cl = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        hit = next((i for i, (w, b) in enumerate(todo) if w_cl is not None and _matches(w_cl, b_cl, w, b)), None)
        if hit is None:
            continue
        todo.pop(hit)
        fused = helper.make_node(
            FUSED_OP, list(node.input), list(relu.output), name=node.name, domain=CL_FUSED_DOMAIN
        )
        fused.attribute.extend(node.attribute)
        fused.attribute.append(helper.make_attribute(RELU_NAME_ATTR, relu.name))
        replaced[node.name] = fused
        dropped.add(relu.name)
    if todo:
        raise ValueError(f"{len(todo)} ConvRelu node(s) not found again after qonnx's channels-last conversion")
    nodes = [replaced.get(n.name, n) for n in graph.node if n.name not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    if replaced and not any(o.domain == CL_FUSED_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CL_FUSED_DOMAIN, 1))
    return model, len(replaced)


def drop_trailing_empty_inputs(model: onnx.ModelProto) -> None:
    """A bias-less ConvRelu inlines to Conv(X, W, "") (the function's B is empty); an empty trailing input means
    "absent" in ONNX, but hls4ml looks up a shape for every input name and fails on ""."""
    for node in model.graph.node:
        while node.input and not node.input[-1]:
            del node.input[-1]


class UnsupportedModelError(ValueError):
    """The graph holds an op that hls4ml 1.3 + qonnx would convert into a wrong design."""


# Found by running them: these compile but compute the wrong numbers, so they are refused up front.
# (AveragePool and GlobalAveragePool were here: pooling.py now converts them correctly.)
WRONG_IN_HLS4ML: dict[str, str] = {}


def check_supported(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.op_type in WRONG_IN_HLS4ML:
            raise UnsupportedModelError(
                f"{node.op_type} '{node.name}' is not supported on the hls4ml path: {WRONG_IN_HLS4ML[node.op_type]}"
            )


def dense_weights(model: onnx.ModelProto) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight as a MatMul would hold it, bias) of each DenseRelu node with default alpha/beta/transA."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    pairs = []
    for node in model.graph.node:
        if node.domain != FUSED_DOMAIN or node.op_type != DENSE_OP:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            continue  # not a plain Dense: its pair stays Dense + ReLU in hls4ml
        w = inits.get(node.input[1])
        if w is None:
            continue
        b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        pairs.append((w.T if attrs.get("transB", 0) else w, b))
    return pairs


def dense_relu_names(model: onnx.ModelProto, pairs: list[tuple[np.ndarray, np.ndarray | None]]) -> list[str]:
    """Names of the Relu nodes that follow MatMul(x, W) [-> Add(B)] of a DenseRelu pair in the qonnx graph.

    qonnx's GemmToMatMul splits each Gemm into MatMul + Add; the pair is found again by its exact weights.
    """
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    single = only_users(graph)

    todo, names = list(pairs), []
    for node in graph.node:
        if node.op_type != "MatMul" or not todo:
            continue
        w = inits.get(node.input[1])
        nxt = single.get(node.output[0])
        bias = None
        if nxt is not None and nxt.op_type == "Add":
            bias = next((inits[i] for i in nxt.input if i in inits), None)
            nxt = single.get(nxt.output[0])
        if w is None or nxt is None or nxt.op_type != "Relu":
            continue
        hit = next((i for i, (pw, pb) in enumerate(todo) if _same(w, pw) and _same_bias(bias, pb)), None)
        if hit is not None:
            todo.pop(hit)
            names.append(nxt.name)
    if todo:
        raise ValueError(f"{len(todo)} DenseRelu node(s) not found again after qonnx's conversion")
    return names


def _same_bias(found: np.ndarray | None, expected: np.ndarray | None) -> bool:
    """An all-zero bias may be gone after qonnx's cleanup: absent and zero are the same bias."""
    if found is None or expected is None or not found.any() or not expected.any():
        return not (found is not None and found.any()) and not (expected is not None and expected.any())
    return np.array_equal(found.reshape(-1), expected.reshape(-1))


def preprocess(
    model: str | Path | onnx.ModelProto, refuse_pairs: bool = True
) -> tuple[onnx.ModelProto, int, list[str]]:
    """Fused (or plain) ONNX -> channels-last graph for hls4ml; ConvRelu pairs re-fused unless refuse_pairs=False.

    Returns the graph, the number of ConvRelu nodes in it, and the names of the Relu nodes that end a DenseRelu
    pair (hls4ml makes the Dense itself; convert.py marks those ReLUs in the layer config).
    """
    original = load_model(model)
    check_supported(original)
    pairs = fused_weights(original)
    dense_pairs = dense_weights(original)
    # onnx's own inliner (expands model-local functions, attribute references resolved): nothing hand-written.
    inlined = onnx.inliner.inline_local_functions(original)
    del inlined.functions[:]
    kept = [o for o in inlined.opset_import if o.domain != FUSED_DOMAIN]
    del inlined.opset_import[:]
    inlined.opset_import.extend(kept)
    drop_trailing_empty_inputs(inlined)
    channels_last = qonnx_channels_last(inlined)
    if not refuse_pairs:
        return channels_last, 0, []
    dense_relus = dense_relu_names(channels_last, dense_pairs)
    if not pairs:
        return channels_last, 0, dense_relus
    return (*refuse(channels_last, pairs), dense_relus)
