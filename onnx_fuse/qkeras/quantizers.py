"""QKeras quantizers -> the parameters of one qonnx `Quant` node (scale, bit width, signed, narrow), or a refusal.

QKeras computes, at inference (qkeras-v3 1.2.1, quantizers.py):
- quantized_bits(bits, integer, symmetric, keep_negative, alpha):
  step * clip(round(x / step), keep_negative * (-2**(bits-1) + symmetric), 2**(bits - keep_negative) - 1)
  with step = alpha * 2**(integer - bits + keep_negative) and round = tf.round (half to even);
- quantized_relu(bits, integer): step * clip(round(x / step), 0, 2**bits - 1) with step = 2**(integer - bits).
qonnx's Quant computes scale * round(clip(x / scale, qmin, qmax)) with np.round (half to even) for
rounding_mode ROUND; clipping to integer bounds before or after rounding gives the same integers, so the two agree
exactly (x / step is exact for a power-of-2 step). alpha="auto_po2" on a weight gives per-channel power-of-2 steps
that depend only on the weight (exported as one type fine and wide enough for all channels). alpha="auto" on a weight
gives per-channel float steps S = max|w| / (2**(bits-1) - 1) * 2**integer (per last axis, from the weight alone):
QKeras' weight is float32(S * z), z an integer in +-(2**(bits-1) - 1), which a Quant with that per-channel scale
(signed, narrow) reproduces exactly (the same float32 product). On an activation both 'auto' forms compute the step
from the batch being quantized (max |x| over every axis but the last, the batch axis included): no fixed function
exists to export, so they are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from onnx_fuse.errors import InputError


@dataclass(frozen=True)
class QuantSpec:
    """One Quant node: x -> scale * round(clip(x / scale)) on `bits` bits; `relu` puts an explicit Relu before it.

    `scale` is a float32 scalar, or for alpha='auto' an array in the Keras weight's layout (e.g. (1, 1, 1, C)) that
    quant_nodes.py lays out as the exported weight is. Compare specs with same_spec (arrays have no truth value)."""

    scale: np.float32 | np.ndarray
    bits: int
    signed: bool
    narrow: bool
    relu: bool = False


def same_spec(a: QuantSpec, b: QuantSpec) -> bool:
    return (a.bits, a.signed, a.narrow, a.relu) == (b.bits, b.signed, b.narrow, b.relu) and np.array_equal(
        a.scale, b.scale
    )


def quantizer_name(q: Any) -> str:
    return str(q) if hasattr(q, "get_config") else getattr(q, "__name__", type(q).__name__)


def refuse(layer: str, q: Any, why: str) -> InputError:
    return InputError(f"QKeras layer '{layer}': quantizer {quantizer_name(q)} is not supported ({why})")


def is_power_of_two(value: float) -> bool:
    return value > 0 and float(np.log2(value)).is_integer()


def common_checks(layer: str, q: Any) -> None:
    if float(getattr(q, "qnoise_factor", 1.0)) != 1.0:
        raise refuse(layer, q, "qnoise_factor != 1 mixes float and quantized values")


def quantized_bits_spec(layer: str, q: Any, *, weight: bool) -> QuantSpec:
    """Spec of a quantized_bits; for a weight, call it after the quantizer ran on that weight (auto_po2 sets q.scale)."""
    common_checks(layer, q)
    bits, integer, keep_negative = int(q.bits), int(q.integer), bool(q.keep_negative)
    if bits - keep_negative <= 0:
        raise refuse(layer, q, "a 1-bit quantized_bits is a binary quantizer")
    if getattr(q, "post_training_scale", None) is not None:
        raise refuse(layer, q, "post_training_scale")
    step = 2.0 ** (integer - bits + keep_negative)
    alpha = q.alpha
    if alpha is None:
        return QuantSpec(np.float32(step), bits, keep_negative, keep_negative and bool(q.symmetric))
    if isinstance(alpha, str):
        if alpha not in ("auto", "auto_po2"):
            raise refuse(layer, q, f"alpha='{alpha}'")
        if not weight:
            raise refuse(layer, q, f"alpha='{alpha}' on an activation recomputes its scale from every input batch")
        if not keep_negative:
            raise refuse(layer, q, f"alpha='{alpha}' with keep_negative=False")
        if alpha == "auto":
            return auto_spec(layer, q, bits, step)
        # auto_po2 keeps q.scale = per-channel scale * 2**(bits - keep_negative) (quantizers.py, alpha branch)
        scales = np.asarray(q.scale, dtype=np.float64).reshape(-1) * step
        if not all(is_power_of_two(s) for s in scales):
            raise refuse(layer, q, "auto_po2 produced a scale that is not a power of 2")
        # One fixed-point type holds every channel exactly: the finest step, widened by the steps between the finest
        # and the coarsest. hls4ml 1.3 cannot convert per-channel weight scales (IndexError in infer_precision).
        widen = int(np.log2(scales.max() / scales.min()))
        return QuantSpec(np.float32(scales.min()), bits + widen, True, True)
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.size != 1 or not is_power_of_two(float(alpha.reshape(-1)[0])):
        raise refuse(layer, q, f"alpha={q.alpha}: only 1, a power of 2 or 'auto_po2' map to a fixed-point type")
    scale = np.float32(step * float(alpha.reshape(-1)[0]))
    return QuantSpec(scale, bits, keep_negative, keep_negative and bool(q.symmetric))


def auto_spec(layer: str, q: Any, bits: int, step: float) -> QuantSpec:
    """alpha='auto' on a weight: QKeras keeps q.scale = S * 2**(bits - 1 - integer) per channel (the last axis unless
    scale_axis says otherwise), in the weight's layout with keepdims; S = q.scale * step exactly (a power-of-2 step)."""
    scale = np.asarray(q.scale, dtype=np.float32) * np.float32(step)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        # an all-zero channel gives scale 0 and QKeras divides 0 by it (NaN weights)
        raise refuse(layer, q, "alpha='auto' computed a zero or non-finite scale (an all-zero output channel?)")
    return QuantSpec(scale, bits, True, True)


def quantized_relu_spec(layer: str, q: Any) -> QuantSpec:
    common_checks(layer, q)
    if float(q.negative_slope) != 0.0:
        raise refuse(layer, q, "negative_slope != 0 (a leaky ReLU)")
    if q.use_sigmoid:
        raise refuse(layer, q, "use_sigmoid")
    if q.relu_upper_bound is not None and not getattr(q, "is_quantized_clip", True):
        raise refuse(layer, q, "relu_upper_bound without is_quantized_clip")
    bits, integer = int(q.bits), int(q.integer)
    return QuantSpec(np.float32(2.0 ** (integer - bits)), bits, False, False, relu=True)


def kind(q: Any) -> str:
    """The quantizer's QKeras class name; exact class, not isinstance: quantized_hswish subclasses quantized_bits."""
    return type(q).__name__ if type(q).__module__.startswith("qkeras") else ""


def weight_spec(layer: str, q: Any) -> QuantSpec:
    if kind(q) != "quantized_bits":
        raise refuse(layer, q, "weights and biases take quantized_bits only")
    return quantized_bits_spec(layer, q, weight=True)


def activation_spec(layer: str, q: Any) -> QuantSpec:
    if kind(q) == "quantized_bits":
        return quantized_bits_spec(layer, q, weight=False)
    if kind(q) == "quantized_relu":
        return quantized_relu_spec(layer, q)
    raise refuse(layer, q, "activations take quantized_relu or quantized_bits only")
