"""Why a Conv or Dense (Gemm) followed by an activation was left alone: the user sees every missed pair and why."""

from __future__ import annotations

from collections import Counter

import onnx

# Activations a Conv is often followed by that the hls4ml side does not (yet) apply in the write-back bit-exactly.
OTHER_ACTIVATIONS = {"LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu", "PRelu", "HardSwish"}


def unfused_pairs(model: onnx.ModelProto) -> list[str]:
    """One line per Conv/Gemm that feeds an activation but stays plain in `model` (run on the fused graph)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    reasons = []
    for conv in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
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
