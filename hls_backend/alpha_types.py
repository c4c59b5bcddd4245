"""Types from the float scales of a quantized model, as per-layer entries of the hls4ml config.

hls4ml 1.3's QONNX flow turns a Quant with a float (not power-of-2) scale into ApplyAlpha layers (quant_opt.py): one
that multiplies by 1/scale and casts to the Quant's integer type (`NAME_scale`), one that multiplies by the scale
(`NAME_rescale`), which it moves below convs and Dense layers and merges with a float bias (move_scales.py,
batchnorm_opt.py). Left to the config, both are typed with the model default (ap_fixed<16,6>): a rescale of 5e-05
is 0 there, a 1/scale of 122.5 wraps, and an activation between a rescale and the next Quant wraps above 32. The
layer names and the arrays exist only after hls4ml's own passes, so the graph is converted once (hls4ml's public
converter, no build) and its layers then get `Precision` entries under their names in `LayerName`, which hls4ml reads
whenever it makes that layer, in the fused and the unfused design alike (one config drives both):

- each ApplyAlpha's `scale` and `bias`: a type that holds the values (fixed_type). Its `result` stays `auto`:
  hls4ml's inference widens it from the input, scale and bias types so that it never rounds or overflows
  (infer_precision.py, _infer_bn_precision).
- each input or activation whose values only reach a Quant's `NAME_scale` layer: the range that Quant can tell apart
  (its bit width over its scale) with SIGNIFICANT_BITS bits, saturating (quant_input_type). 8 bits fewer (16 bits
  below an 8-bit Quant's step instead of 24) measured a one-step difference from Brevitas on some inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

# Model-level key of the hls4ml config (ignored by hls4ml) holding the derived types, applied or not, for the summary.
SCALE_TYPES_KEY = "OnnxFuseScaleTypes"
# float32's significant bits: the precision the scales are stored and applied in by Brevitas, QKeras and
# onnxruntime, so a float32 scale is held exactly.
SIGNIFICANT_BITS = 24
# hls4ml layers that hand their input's values on unchanged (their `auto` result type is their input's).
PASS_THROUGH = ("Transpose", "Reshape", "ZeroPadding1D", "ZeroPadding2D")


def has_float_scales(model: onnx.ModelProto) -> bool:
    """Whether a Quant of the graph has a scale that is not a power of 2 (hls4ml makes ApplyAlpha layers of it). Other
    graphs keep hls4ml's default types (an ApplyAlpha of a float model's Mul/Add with a constant included)."""
    from hls_backend.uniform_scales import is_po2

    constants = {t.name: t for t in model.graph.initializer}
    return any(
        node.op_type == "Quant" and node.input[1] in constants
        and not is_po2(numpy_helper.to_array(constants[node.input[1]]).astype(np.float64))
        for node in model.graph.node
    )


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


def quant_input_type(quant: Any) -> str | None:
    """The type for the values a Quant's `NAME_scale` ApplyAlpha reads, or None when `quant` is not one.

    That layer computes x * c + b and casts to the Quant's saturating type (step q, magnitude below 2^I): an x beyond
    (2^I + q + |b|) / |c| saturates the Quant whatever its exact value, so a saturating type that reaches that bound
    changes no output; below it the type keeps SIGNIFICANT_BITS bits, as a float32 holds the largest such value."""
    from hls4ml.model.types import FixedPrecisionType, SaturationMode

    out = quant.get_output_variable().type.precision
    if quant.class_name != "ApplyAlpha" or not isinstance(out, FixedPrecisionType):
        return None
    if out.saturation_mode not in (SaturationMode.SAT, SaturationMode.SAT_SYM):
        return None
    scale = np.abs(np.asarray(quant.get_weights("scale").data_unquantized, dtype=np.float64))
    bias = np.asarray(quant.get_weights("bias").data_unquantized, dtype=np.float64)
    if np.any(scale == 0):
        return None
    step = 2.0 ** -out.fractional
    bound = float(np.max((2.0 ** (out.integer - int(out.signed)) + step + np.abs(bias)) / scale))
    signed = bool(out.signed or np.any(bias != 0) or np.any(np.asarray(quant.get_weights("scale").data_unquantized) < 0))
    exponent = math.floor(math.log2(bound)) + 1  # bound < 2**exponent
    integer = exponent + int(signed)
    return f"ap_{'' if signed else 'u'}fixed<{SIGNIFICANT_BITS + int(signed)},{integer},AP_TRN,AP_SAT>"


def only_consumer(layer: Any) -> Any | None:
    consumers = layer.get_output_nodes()
    return consumers[0] if len(consumers) == 1 and layer.outputs[0] not in layer.model.outputs else None


def reads_only(layer: Any) -> Any | None:
    """The layer that alone reads `layer`'s values, past layers that hand them on unchanged."""
    reader = only_consumer(layer)
    while reader is not None and (
        reader.class_name in PASS_THROUGH
        or (reader.class_name.startswith("Pooling") and str(reader.get_attr("pool_op", "")).lower() == "max")
    ):
        reader = only_consumer(reader)
    return reader


def derived_types(graph: Any) -> dict[str, dict[str, str]]:
    """{layer name: {"scale": type, "bias": type} or {"result": type}} for a converted, unfused hls4ml ModelGraph."""
    from hls4ml.model.layers import Activation, Input

    types = {
        layer.name: {name: fixed_type(layer.get_weights(name).data_unquantized) for name in ("scale", "bias")}
        for layer in graph.get_layers()
        if layer.class_name == "ApplyAlpha"
    }
    for layer in graph.get_layers():
        # an input or activation: hls4ml types these with the model default (an `auto` result is not inferred)
        if not isinstance(layer, (Activation, Input)):
            continue
        reader = reads_only(layer)
        found = quant_input_type(reader) if reader is not None else None
        if found is not None:
            types[layer.name] = {"result": found}
    return types


def with_types(config: dict, types: dict[str, dict[str, str]]) -> dict:
    """`config` with `types` added to the layers' LayerName Precision entries (other keys kept)."""
    layers = config.setdefault("LayerName", {})
    for name, precisions in types.items():
        entry = layers.setdefault(name, {})
        precision = entry.get("Precision")
        if not isinstance(precision, dict):
            precision = {} if precision is None else {"default": precision}  # hls4ml's meaning of a bare type
        entry["Precision"] = {**precision, **precisions}
    return config


def not_used(config: dict, types: dict[str, dict[str, str]]) -> list[str]:
    """The layers of `types` whose config entry ends up with other types (the user's config set them)."""
    layers = config.get("LayerName") or {}
    unused = []
    for name, precisions in types.items():
        precision = (layers.get(name) or {}).get("Precision")
        if not isinstance(precision, dict) or any(precision.get(k) != v for k, v in precisions.items()):
            unused.append(name)
    return unused


def sets_defaults(user_config: dict) -> bool:
    """Whether an hls4ml config sets default types (the model's or a layer class's): they then type the scale
    stages too, as without onnx-fuse."""
    layer_types = user_config.get("LayerType") or {}
    return "Precision" in (user_config.get("Model") or {}) or any(
        isinstance(entry, dict) and "Precision" in entry for entry in layer_types.values()
    )
