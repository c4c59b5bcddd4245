"""Types for the scale and bias of every ApplyAlpha, from their values, as per-layer entries of the hls4ml config.

hls4ml 1.3's QONNX flow turns a Quant with a float (not power-of-2) scale into ApplyAlpha layers (quant_opt.py),
moves them below convs and Dense layers and merges them with a float bias (move_scales.py, batchnorm_opt.py), and
types their `scale` and `bias` arrays with the layer's config, which is the model default (ap_fixed<16,6>): a
rescale of 5e-05 is 0 there, a 1/scale of 122.5 wraps, and the design no longer computes the model. The layer names
and the arrays exist only after hls4ml's own passes, so the graph is converted once (hls4ml's public converter, no
build) and each ApplyAlpha then gets `Precision: {scale, bias}` entries under its name in `LayerName`; hls4ml reads
them whenever it makes that layer, in the fused and the unfused design alike (one config drives both). The result
type stays `auto`: hls4ml's inference widens it from the input, scale and bias types so that it never rounds or
overflows (infer_precision.py, _infer_bn_precision).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# float32's significant bits: the precision the scales are stored and applied in by Brevitas, QKeras and
# onnxruntime, so a float32 scale is held exactly.
SIGNIFICANT_BITS = 24


def fixed_type(values: np.ndarray) -> str:
    """The narrowest ap_fixed type that holds every value exactly, but at most SIGNIFICANT_BITS bits below the
    largest magnitude: a value with more significant bits (a float64, or a small one next to a large one) is held to
    within 2^(E - 24) < 2^-23 * max|v|, where 2^(E-1) <= max|v| < 2^E. At least 2 bits wide: hls4ml computes a
    1-bit weight as a binary (+-1) product."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    peak = float(np.max(np.abs(flat))) if flat.size else 0.0
    signed = bool(np.any(flat < 0))
    if peak == 0.0:
        return "ap_uint<2>"
    exponent = math.floor(math.log2(peak)) + 1  # peak < 2**exponent
    integer = exponent + int(signed)
    fractional = SIGNIFICANT_BITS - exponent
    while integer + fractional > 2 and exact_on_grid(flat, fractional - 1):
        fractional -= 1
    return f"ap_{'' if signed else 'u'}fixed<{integer + fractional},{integer}>"


def exact_on_grid(values: np.ndarray, fractional: int) -> bool:
    scaled = np.ldexp(values, fractional)
    return bool(np.all(scaled == np.round(scaled)))


def alpha_layers(graph: Any) -> dict[str, dict[str, str]]:
    """{ApplyAlpha layer name: {"scale": type, "bias": type}} for a converted hls4ml ModelGraph."""
    return {
        layer.name: {name: fixed_type(layer.get_weights(name).data_unquantized) for name in ("scale", "bias")}
        for layer in graph.get_layers()
        if layer.class_name == "ApplyAlpha"
    }


def with_alpha_types(config: dict, types: dict[str, dict[str, str]]) -> dict:
    """`config` with each ApplyAlpha's scale and bias types added to its LayerName entry (other keys kept)."""
    layers = config.setdefault("LayerName", {})
    for name, precisions in types.items():
        entry = layers.setdefault(name, {})
        precision = entry.get("Precision")
        if not isinstance(precision, dict):
            precision = {} if precision is None else {"default": precision}  # hls4ml's meaning of a bare type
        entry["Precision"] = {**precision, **precisions}
    return config
