"""Fold constants, shape chains and BatchNorm/bias (also Keras 3's Mul+Add BatchNorm) into Conv with onnxslim."""

from __future__ import annotations

from collections import Counter

import onnx
import onnxslim

# FusionGelu would introduce a non-standard op; nothing else onnxslim fuses leaves the ONNX standard domain.
SKIPPED_FUSIONS = ["FusionGelu"]


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    before = op_counts(model)
    slimmed = onnxslim.slim(model, skip_fusion_patterns=SKIPPED_FUSIONS)
    after = op_counts(slimmed)
    changes = [
        f"{op}: {before[op]} -> {after[op]}" for op in sorted(before | after) if before[op] != after[op]
    ]
    return slimmed, changes
