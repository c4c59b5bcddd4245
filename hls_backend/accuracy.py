"""How far the hls4ml design is from the model itself: C-sim against onnxruntime on the same inputs, and when far,
the first layer whose values leave the default fixed-point type's range (the usual cause: ap_fixed<16,6> on a
float model overflows), with the precision that would hold them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import onnx

# "far": the design no longer computes what the model does; rounding alone stays well inside both bounds
FAR_RELATIVE_ERR = 0.1  # of the largest output magnitude
FAR_TOP1 = 0.9  # fraction of inputs whose top-1 class agrees
AP_FIXED = re.compile(r"ap_(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)")


@dataclass
class Accuracy:
    samples: int
    max_abs_err: float
    top1_agree: int | None  # None for a model with one output value (no class to agree on)
    far: bool
    warning: str | None = None

    def line(self) -> str:
        top1 = f", top-1 agreement {self.top1_agree}/{self.samples}" if self.top1_agree is not None else ""
        return f"hls4ml C-sim vs onnxruntime: max abs err {self.max_abs_err:.3g} on {self.samples} inputs{top1}"

    def as_dict(self) -> dict:
        return {"samples": self.samples, "max_abs_err": self.max_abs_err, "top1_agree": self.top1_agree,
                "far": self.far, "warning": self.warning}


def csim_vs_onnx(y_csim: np.ndarray, y_onnx: np.ndarray) -> Accuracy:
    """C-sim outputs (the design's fixed-point values) against onnxruntime's, one row per input; NaN at the same
    place on both sides agrees."""
    samples = len(y_onnx)
    a = np.asarray(y_csim, dtype=np.float64).reshape(samples, -1)
    b = np.asarray(y_onnx, dtype=np.float64).reshape(samples, -1)
    if a.shape != b.shape:
        raise ValueError(f"C-sim output shape {a.shape} differs from onnxruntime's {b.shape}")
    if a.size == 0:
        return Accuracy(samples, 0.0, None, False)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    err = float(np.max(np.where(same, 0.0, np.abs(a - b))))
    top1 = int(np.sum(a.argmax(axis=1) == b.argmax(axis=1))) if b.shape[1] > 1 else None
    far = err > FAR_RELATIVE_ERR * float(np.max(np.abs(b))) or (top1 is not None and top1 < FAR_TOP1 * samples)
    return Accuracy(samples, err, top1, far)


def far_warning(model: onnx.ModelProto, x: np.ndarray, precision: str) -> str | None:
    """Why a design is far from the model, for the summary: the first layer that overflows `precision` (see
    overflow_warning), else its fractional bits. None when the precision is not an ap_fixed type."""
    overflow = overflow_warning(model, x, precision)
    match = AP_FIXED.search(precision)
    if overflow is not None or match is None:
        return overflow
    unsigned, width, integer = match.group(1), int(match.group(2)), int(match.group(3))
    return (
        f"the design is far from the model and no layer's values leave {precision}: rounding to its "
        f"{width - integer} fractional bits is the likely cause; raise them, e.g. --precision "
        f"'ap_{unsigned}fixed<{width + 4},{integer}>'"
    )


def overflow_warning(model: onnx.ModelProto, x: np.ndarray, precision: str) -> str | None:
    """The first node (in graph order) whose output exceeds the signed range of `precision`, and the precision with
    enough integer bits for every node's values (same fractional bits). None when nothing overflows or the default
    precision is not an ap_fixed type."""
    from onnx_fuse.verify import run_onnx

    match = AP_FIXED.search(precision)
    if match is None:
        return None
    unsigned, width, integer = match.group(1) == "u", int(match.group(2)), int(match.group(3))
    limit = 2.0 ** (integer if unsigned else integer - 1)
    graph = with_every_node_output(model)
    names = [o.name for o in graph.graph.output]
    values = run_onnx(graph, {graph.graph.input[0].name: x})
    peaks = {name: float(np.max(np.abs(v))) for name, v in zip(names, values) if v.dtype.kind == "f" and v.size}
    first = next((name for name in names if peaks.get(name, 0.0) >= limit), None)
    if first is None:
        return None
    peak = max(peaks.values())
    needed = math.floor(math.log2(peak)) + 1 + (0 if unsigned else 1)
    suggestion = f"ap_{'u' if unsigned else ''}fixed<{width + needed - integer},{needed}>"
    producer = next(n for n in graph.graph.node if first in n.output)
    return (
        f"the design is far from the model: {producer.name} is the first layer whose "
        f"values leave {precision} (|x| up to {peaks[first]:.4g}, the type holds {limit:g}); "
        f"raise the precision, e.g. --precision '{suggestion}' (holds every layer's values on these inputs)"
    )


def with_every_node_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """The unfused graph (a fused node's pre-activation value is a layer of the design too), its nodes named as the
    hls4ml config names them (qonnx's GiveUniqueNodeNames: Conv_0, Relu_0, ...), every node output a graph output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hls_backend.preprocess import inline_and_tag

    graph = ModelWrapper(inline_and_tag(model)).transform(GiveUniqueNodeNames()).model
    present = {o.name for o in graph.graph.output}
    for node in graph.graph.node:
        for name in node.output:
            if name and name not in present:
                graph.graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    order = {name: i for i, node in enumerate(graph.graph.node) for name in node.output}
    outputs = sorted(graph.graph.output, key=lambda o: order.get(o.name, -1))
    del graph.graph.output[:]
    graph.graph.output.extend(outputs)
    return graph
