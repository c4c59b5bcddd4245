"""Why a producer (Conv, Dense) followed by an activation was left alone: the user sees every missed pair and why."""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import numpy_helper

from onnx_fuse.patterns import ACTIVATION_OPS, PRODUCER_OPS, QONNX_DOMAIN

# Activations often found after a conv that the table has no write-back for: reported, never fused.
OTHER_ACTIVATIONS = {"Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu", "PRelu", "HardSwish", "Softplus"}

# Ops an exporter puts between a layer and its activation when it writes a BatchNormalization (BN itself, or Keras'
# Mul + Add, inside Transpose/Unsqueeze/Squeeze sandwiches); normalise folds them where it can.
BATCHNORM_PARTS = {"BatchNormalization", "Mul", "Add", "Transpose", "Unsqueeze", "Squeeze"}
LONGEST_BATCHNORM = 4  # Unsqueeze -> BN -> Squeeze, Transpose -> BN -> Transpose, Mul -> Add


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
        if node.op_type in ACTIVATION_OPS or node.op_type in OTHER_ACTIVATIONS:
            return chain if any(n.op_type in ("BatchNormalization", "Mul") for n in chain) else None
        if node.op_type not in BATCHNORM_PARTS or (node.op_type in ("Mul", "Add") and not set(node.input) & constants):
            return None
        chain.append(node)
    return None


def unfused_pairs(model: onnx.ModelProto) -> list[str]:
    """One line per Conv/Gemm that feeds an activation but stays plain in `model` (run on the fused graph)."""
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    # name -> TensorProto; only an activation's extra inputs (Clip bounds) are ever read as arrays
    constants = {t.name: t for t in graph.initializer}
    constants.update(
        (n.output[0], n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    )
    constant_names = set(constants)
    quantized = {n.output[0]: n for n in graph.node if n.op_type == "Quant" and n.domain == QONNX_DOMAIN}

    def constant_weight(name: str) -> bool:  # as fuse.rules.is_constant_weight, on the proto graph
        quant = quantized.get(name)
        return name in constants or (quant is not None and all(i in constants for i in quant.input))

    outputs = {o.name for o in graph.output}
    reasons = []
    for producer in (n for n in graph.node if n.op_type in PRODUCER_OPS):
        name = f"{producer.op_type} '{producer.name or producer.output[0]}'"
        if producer.domain not in ("", "ai.onnx"):
            acts = [u.op_type for u in consumers.get(producer.output[0], [])]
            reasons.append(f"{name} ({producer.domain}) -> {', '.join(acts)}: fused pairs are standard ONNX ops")
            continue
        chain = batchnorm_chain(producer, consumers, constant_names)
        if chain:
            act = consumers[chain[-1].output[0]][0].op_type
            path = " -> ".join([name, *(n.op_type for n in chain), act])
            reasons.append(f"{path}: the BatchNormalization could not be folded into the {producer.op_type}")
            continue
        head = producer
        users = consumers.get(producer.output[0], [])
        if len(users) == 1 and users[0].op_type == "Quant" and users[0].domain == QONNX_DOMAIN:
            head = users[0]  # producer -> Quant -> activation: the Quant's output is what the activation reads
            users = consumers.get(head.output[0], [])
        acts = [u for u in users if u.op_type in ACTIVATION_OPS or u.op_type in OTHER_ACTIVATIONS]
        if not acts:
            continue
        name += " -> Quant" if head is not producer else ""
        pair = f"{name} -> {', '.join(sorted(Counter(u.op_type for u in acts)))}"
        if producer.output[0] in outputs or head.output[0] in outputs:
            reasons.append(f"{pair}: the {head.op_type} output is also a graph output")
        elif len(users) > 1:
            reasons.append(f"{pair}: the {head.op_type} output has {len(users)} consumers")
        elif PRODUCER_OPS[producer.op_type].needs_constant_weight and not constant_weight(producer.input[1]):
            reasons.append(f"{pair}: weights are not constant (not a Dense layer)")
        elif acts[0].op_type in ACTIVATION_OPS:
            extra = [numpy_helper.to_array(constants[i]) if i in constants else None for i in acts[0].input[1:]]
            reasons.append(f"{pair}: {ACTIVATION_OPS[acts[0].op_type].refusal(extra)}")
        else:
            table = ", ".join(ACTIVATION_OPS)
            reasons.append(f"{pair}: only {table} are applied bit-exactly in the hls4ml write-back")
    return reasons
