"""Normalise an exported graph into the form hls4ml's ONNX path reads: a list of named passes, run in order.

Each pass is `apply(model) -> (model, changes)`, qonnx-style; `changes` lists what it changed (empty: nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import onnx

from onnx_fuse.normalise import (
    batchnorm_sandwich,
    check_and_infer,
    conv1d,
    dense_batchnorm,
    explicit_conv_attrs,
    fix_batch,
    fixed_batch,
    fold_constants,
    initializer_inputs,
    layout_reshape,
    matmul_as_gemm,
    qdq_to_quant,
    reduce_mean,
    relu_spellings,
    upgrade_opset,
    upsampling,
)

log = logging.getLogger(__name__)

Pass = Callable[[onnx.ModelProto], "tuple[onnx.ModelProto, list[str]]"]

PASSES: list[tuple[str, Pass]] = [
    ("upgrade_opset", upgrade_opset.apply),
    ("initializer_inputs", initializer_inputs.apply),
    ("fixed_batch", fixed_batch.apply),
    ("fix_batch", fix_batch.apply),
    ("qdq_to_quant", qdq_to_quant.apply),  # before fold_constants, which would fold a dequantized weight to floats
    ("batchnorm_sandwich", batchnorm_sandwich.apply),
    ("fold_constants", fold_constants.apply),
    ("conv1d", conv1d.apply),
    ("reduce_mean", reduce_mean.apply),
    ("upsampling", upsampling.apply),
    ("relu_spellings", relu_spellings.apply),
    ("layout_reshape", layout_reshape.apply),
    ("matmul_as_gemm", matmul_as_gemm.apply),
    ("dense_batchnorm", dense_batchnorm.apply),
    ("explicit_conv_attrs", explicit_conv_attrs.apply),
    ("check_and_infer", check_and_infer.apply),
]


@dataclass
class PassReport:
    name: str
    changes: list[str] = field(default_factory=list)


def normalise(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[PassReport]]:
    reports = []
    for name, apply in PASSES:
        model, changes = apply(model)
        for change in changes:
            log.debug("%s: %s", name, change)
        reports.append(PassReport(name, changes))
    return model, reports
