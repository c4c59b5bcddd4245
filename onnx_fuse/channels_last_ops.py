"""QONNX already in channels-last form: qonnx's `qonnx.custom_op.channels_last` Conv, MaxPool and BatchNormalization
(what qonnx's ConvertToChannelsLastAndClean writes, as in hls4ml's example files *_ch_last.onnx), made runnable in
plain onnxruntime.

qonnx executes such a node (ChannelsLastWrappedOp.execute_node) by transposing input 0, and a Conv's weights, to
channels-first, running the standard ONNX op, and transposing the result back. Each op used gets a model-local
function doing exactly that, its attributes passed by reference. Transpose's perm depends on the tensor rank, which
a function cannot branch on: the rank is read per node (a Conv's weights, a MaxPool's kernel, else the input's
inferred shape) and a file using one op at two ranks is refused. The nodes stay as they are: hls4ml's QONNX flow
reads them without a second conversion.
"""

from __future__ import annotations

import onnx
from onnx import helper

from onnx_fuse.errors import InputError

DOMAIN = "qonnx.custom_op.channels_last"
INTS, INT, FLOAT, STRING = (
    onnx.AttributeProto.INTS,
    onnx.AttributeProto.INT,
    onnx.AttributeProto.FLOAT,
    onnx.AttributeProto.STRING,
)
# op -> (inputs, attributes as in the ONNX op, how many leading inputs qonnx transposes)
OPS = {
    "Conv": (
        ["X", "W", "B"],
        [
            ("auto_pad", STRING),
            ("dilations", INTS),
            ("group", INT),
            ("kernel_shape", INTS),
            ("pads", INTS),
            ("strides", INTS),
        ],
        2,
    ),
    "MaxPool": (
        ["X"],
        [
            ("auto_pad", STRING),
            ("ceil_mode", INT),
            ("dilations", INTS),
            ("kernel_shape", INTS),
            ("pads", INTS),
            ("storage_order", INT),
            ("strides", INTS),
        ],
        1,
    ),
    "BatchNormalization": (
        ["X", "scale", "B", "input_mean", "input_var"],
        [("epsilon", FLOAT), ("momentum", FLOAT)],
        1,
    ),
}


def to_channels_first(rank: int) -> list[int]:
    """qonnx's to_channels_first_args: (N, ..., C) -> (N, C, ...)."""
    return [0, rank - 1, *range(1, rank - 1)]


def to_channels_last(rank: int) -> list[int]:
    """qonnx's to_channels_last_args: (N, C, ...) -> (N, ..., C)."""
    return [0, *range(2, rank), 1]


def function(op_type: str, rank: int, onnx_opset: int) -> onnx.FunctionProto:
    inputs, attrs, transposed = OPS[op_type]
    nodes, body_inputs = [], []
    for index, name in enumerate(inputs):
        if index < transposed:
            nodes.append(helper.make_node("Transpose", [name], [f"{name}_first"], perm=to_channels_first(rank)))
            body_inputs.append(f"{name}_first")
        else:
            body_inputs.append(name)
    node = helper.make_node(op_type, body_inputs, ["Y_first"])
    node.attribute.extend(onnx.AttributeProto(name=name, ref_attr_name=name, type=kind) for name, kind in attrs)
    nodes.append(node)
    nodes.append(helper.make_node("Transpose", ["Y_first"], ["Y"], perm=to_channels_last(rank)))
    return helper.make_function(
        DOMAIN,
        op_type,
        inputs=inputs,
        outputs=["Y"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", onnx_opset)],
        attributes=[name for name, _ in attrs],
    )


def node_rank(node: onnx.NodeProto, ranks: dict[str, int]) -> int | None:
    if node.op_type == "Conv" and node.input[1] in ranks:
        return ranks[node.input[1]]
    kernel = next((a.ints for a in node.attribute if a.name == "kernel_shape"), None)
    if kernel:
        return len(kernel) + 2
    return ranks.get(node.input[0])


def tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        if value.type.tensor_type.HasField("shape"):
            ranks.setdefault(value.name, len(value.type.tensor_type.shape.dim))
    return ranks


def attach(model: onnx.ModelProto, onnx_opset: int) -> None:
    """One function per channels-last op used; refuses ops qonnx has no channels-last form of."""
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    if not nodes:
        return
    ranks, used = tensor_ranks(model), {}
    for node in nodes:
        where = f"channels-last {node.op_type} node '{node.name or node.output[0]}'"
        if node.op_type not in OPS:
            raise InputError(f"unsupported {where}: qonnx's channels-last domain has only {', '.join(OPS)}")
        if len(node.output) != 1:
            raise InputError(f"{where} has {len(node.output)} outputs: qonnx runs channels-last ops with one")
        rank = node_rank(node, ranks)
        if rank is None or rank < 3:
            raise InputError(f"{where}: the rank of its input is unknown (no shape in the file)")
        if used.setdefault(node.op_type, rank) != rank:
            raise InputError(
                f"channels-last {node.op_type} is used at ranks {used[node.op_type]} and {rank}: "
                "onnx-fuse runs one rank per op"
            )
    kept = [f for f in model.functions if f.domain != DOMAIN]
    del model.functions[:]
    model.functions.extend(kept + [function(op, rank, onnx_opset) for op, rank in sorted(used.items())])
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
