"""Why a Conv or Dense (Gemm) followed by an activation was left alone: the user sees every missed pair and why."""

from __future__ import annotations

from collections import Counter

import onnx

# Ops an exporter puts between a layer and its activation when it writes a BatchNormalization (BN itself, or Keras'
# Mul + Add, inside Transpose/Unsqueeze/Squeeze sandwiches); normalise folds them where it can.
BATCHNORM_PARTS = {"BatchNormalization", "Mul", "Add", "Transpose", "Unsqueeze", "Squeeze"}
LONGEST_BATCHNORM = 4  # Unsqueeze -> BN -> Squeeze, Transpose -> BN -> Transpose, Mul -> Add

# Activations a Conv is often followed by that the hls4ml side does not (yet) apply in the write-back bit-exactly.
OTHER_ACTIVATIONS = {"LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu", "PRelu", "HardSwish"}


def batchnorm_chain(
    start: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]], constants: set[str]
) -> list[onnx.NodeProto] | None:
    """The BatchNormalization-like nodes between `start` and the activation they lead to, or None: single-consumer
    links only, Mul/Add by a constant only (an Add of two tensors is a residual, fused never), and a BN or a Mul
    among them."""
    chain, node = [], start
    while len(chain) < LONGEST_BATCHNORM:
        users = consumers.get(node.output[0], [])
        if len(users) != 1:
            return None
        node = users[0]
        if node.op_type == "Relu" or node.op_type in OTHER_ACTIVATIONS:
            return chain if any(n.op_type in ("BatchNormalization", "Mul") for n in chain) else None
        if node.op_type not in BATCHNORM_PARTS or (node.op_type in ("Mul", "Add") and not set(node.input) & constants):
            return None
        chain.append(node)
    return None


def unfused_pairs(model: onnx.ModelProto) -> list[str]:
    """One line per Conv/Gemm that feeds an activation but stays plain in `model` (run on the fused graph)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    constants = {i.name for i in model.graph.initializer} | {
        n.output[0] for n in model.graph.node if n.op_type == "Constant"
    }
    reasons = []
    for conv in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        chain = batchnorm_chain(conv, consumers, constants)
        if chain:
            path = " -> ".join([f"{conv.op_type} '{conv.name or conv.output[0]}'", *(n.op_type for n in chain)])
            act = consumers[chain[-1].output[0]][0].op_type
            reasons.append(f"{path} -> {act}: the BatchNormalization could not be folded into the {conv.op_type}")
            continue
        users = consumers.get(conv.output[0], [])
        acts = [u for u in users if u.op_type == "Relu" or u.op_type in OTHER_ACTIVATIONS]
        if not acts:
            continue
        pair = f"{conv.op_type} '{conv.name or conv.output[0]}' -> {', '.join(sorted(Counter(u.op_type for u in acts)))}"
        if conv.output[0] in outputs:
            reasons.append(f"{pair}: the {conv.op_type} output is also a graph output")
        elif len(users) > 1:
            reasons.append(f"{pair}: the {conv.op_type} output has {len(users)} consumers")
        elif all(u.op_type == "Relu" for u in acts):
            reasons.append(f"{pair}: weights are not constant (not a Dense layer)")
        else:
            reasons.append(f"{pair}: only ReLU is applied bit-exactly in the hls4ml write-back")
    return reasons
