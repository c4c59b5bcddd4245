"""Why a producer (Conv, Dense) followed by an activation was left alone: the user sees every missed pair and why."""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import numpy_helper

from onnx_fuse.patterns import ACTIVATION_OPS, PRODUCER_OPS

# Activations often found after a conv that the table has no write-back for: reported, never fused.
OTHER_ACTIVATIONS = {"Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu", "PRelu", "HardSwish", "Softplus"}


def unfused_pairs(model: onnx.ModelProto) -> list[str]:
    """One line per Conv/Gemm that feeds an activation but stays plain in `model` (run on the fused graph)."""
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    constants.update(
        (n.output[0], numpy_helper.to_array(n.attribute[0].t))
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    )
    outputs = {o.name for o in graph.output}
    reasons = []
    for producer in (n for n in graph.node if n.op_type in PRODUCER_OPS):
        users = consumers.get(producer.output[0], [])
        acts = [u for u in users if u.op_type in ACTIVATION_OPS or u.op_type in OTHER_ACTIVATIONS]
        if not acts:
            continue
        name = f"{producer.op_type} '{producer.name or producer.output[0]}'"
        pair = f"{name} -> {', '.join(sorted(Counter(u.op_type for u in acts)))}"
        if producer.output[0] in outputs:
            reasons.append(f"{pair}: the {producer.op_type} output is also a graph output")
        elif len(users) > 1:
            reasons.append(f"{pair}: the {producer.op_type} output has {len(users)} consumers")
        elif PRODUCER_OPS[producer.op_type].needs_constant_weight and producer.input[1] not in constants:
            reasons.append(f"{pair}: weights are not constant (not a Dense layer)")
        elif acts[0].op_type in ACTIVATION_OPS:
            extra = [constants.get(i) for i in acts[0].input[1:]]
            reasons.append(f"{pair}: {ACTIVATION_OPS[acts[0].op_type].refusal(extra)}")
        else:
            table = ", ".join(ACTIVATION_OPS)
            reasons.append(f"{pair}: only {table} are applied bit-exactly in the hls4ml write-back")
    return reasons
