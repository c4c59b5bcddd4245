"""The name tokens that tie a rebuilt layer to its nodes in the tf2onnx graph, and their removal afterwards.

TF suffixes `_1`, `_2` to repeated name scopes (a layer `conv_1` can end up under `conv_1_2/`), so the original
layer names do not identify a layer's nodes; a unique prefix `qkx<index>__` on each rebuilt layer does.
"""

from __future__ import annotations

import re

import onnx

TOKEN = "qkx{}__"
ANY_TOKEN = re.compile(r"(^|/)qkx[0-9]+__")


def in_scope(name: str, token: str) -> bool:
    return re.search(rf"(^|/){re.escape(token)}", name) is not None


def unscoped(name: str) -> bool:
    return ANY_TOKEN.search(name) is None


def strip_tokens(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the tokens from node and tensor names, unless two names would then collide (names stay unique)."""
    graph = model.graph
    tensors = {n for node in graph.node for n in (*node.input, *node.output) if n}
    tensors |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)} | {t.name for t in graph.initializer}
    rename = {n: ANY_TOKEN.sub(r"\1", n) for n in tensors}
    node_names = [ANY_TOKEN.sub(r"\1", node.name) for node in graph.node]
    if len(set(rename.values())) != len(rename) or len(set(node_names)) != len(node_names):
        return model
    for node, name in zip(graph.node, node_names):
        node.name = name
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        value.name = rename[value.name]
    return model
