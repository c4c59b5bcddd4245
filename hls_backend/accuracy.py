"""How far the hls4ml design is from the model itself: C-sim against onnxruntime on the same inputs, and when far,
the first layer where hls4ml's trace of the design leaves the ONNX values (the usual cause: ap_fixed<16,6> on a
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


@dataclass
class Trace:
    """hls4ml's trace of the unfused design: each layer's output, one row per input (hls4ml's channels-last layout),
    and the layer's result type."""

    values: dict[str, np.ndarray]
    types: dict[str, str]


@dataclass
class Layers:
    """onnxruntime's value of every float node output of the unfused graph, keyed by node name in graph order, and
    each node's sole consumer (hls4ml merges a MatMul's bias Add into its Dense)."""

    values: dict[str, np.ndarray]
    consumer: dict[str, str]


def far_warning(model: onnx.ModelProto, x: np.ndarray, precision: str, trace: Trace | None = None) -> str | None:
    """Why a design is far from the model, for the summary. With hls4ml's trace: the first layer whose traced values
    leave onnxruntime's. Without one (or where no layer departs): the first layer whose ONNX values overflow
    `precision`, else its fractional bits. The suggested precision holds every layer's ONNX values."""
    layers = layer_values(model, x)
    match = AP_FIXED.search(precision)
    first = first_overflow(layers.values, match) if match is not None else None
    advice = precision_advice(layers.values, match, first) if match is not None else None
    departure = first_departure(layers, trace) if trace is not None else None
    if departure is not None:
        name, err, peak = departure
        held = f"; its type {trace.types[name]} holds {type_range(trace.types[name]):g}" if name in trace.types else ""
        return (
            f"the design is far from the model: {name} is the first layer whose hls4ml trace leaves the ONNX values "
            f"(max abs err {err:.3g}, |x| up to {peak:.4g}{held})" + (f"; {advice}" if advice else "")
        )
    if match is None:
        return None
    if first is not None:
        return (
            f"the design is far from the model: {first} is the first layer whose values leave {precision} (|x| up to "
            f"{peak_of(layers.values[first]):.4g}, the type holds {type_range(precision):g}); {advice}"
        )
    return f"the design is far from the model and no layer's values leave {precision}: {advice}"


def precision_advice(values: dict[str, np.ndarray], match: re.Match, first_overflow: str | None) -> str:
    """Integer bits for the largest value of any layer when one (first_overflow) overflows the default type, else 4
    more fractional bits."""
    unsigned, width, integer = match.group(1) == "u", int(match.group(2)), int(match.group(3))
    u = "u" if unsigned else ""
    if first_overflow is None:
        return (f"rounding to its {width - integer} fractional bits is the likely cause; raise them, e.g. --precision "
                f"'ap_{u}fixed<{width + 4},{integer}>'")
    needed = math.floor(math.log2(max(map(peak_of, values.values())))) + 1 + (0 if unsigned else 1)
    return (f"raise the precision, e.g. --precision 'ap_{u}fixed<{width + needed - integer},{needed}>' (holds every "
            "layer's values on these inputs)")


def first_overflow(values: dict[str, np.ndarray], match: re.Match) -> str | None:
    """The first layer (graph order) whose ONNX values exceed the range of the matched ap_fixed type."""
    limit = type_range(match.group(0))
    return next((name for name, v in values.items() if peak_of(v) >= limit), None)


def first_departure(layers: Layers, trace: Trace) -> tuple[str, float, float] | None:
    """The first traced layer (ONNX graph order) whose values differ from onnxruntime's by more than FAR_RELATIVE_ERR
    of their largest magnitude: (hls4ml layer name, max abs err, largest ONNX magnitude). hls4ml names a layer its
    optimizers replaced `{Class}_{node}` (Conv2D_Conv_1, Dense_MatMul_0), and a Dense holds its MatMul's bias Add:
    such a layer matches its node or that node's consumer, whichever is closer. Layers that match no node are not
    compared."""
    for traced, node in traced_nodes(layers, trace):
        t = trace.values[traced]
        errors = []
        for name in (node, layers.consumer.get(node)):
            v = layers.values.get(name)
            if v is None:
                continue
            v = v[: len(t)]  # the trace may cover the first inputs only
            if v.ndim >= 3 and t.shape == (v.shape[0], *v.shape[2:], v.shape[1]):
                v = np.moveaxis(v, 1, -1)  # NCHW -> hls4ml's channels-last
            elif t.size != v.size:
                continue
            errors.append((float(np.max(np.abs(t.reshape(v.shape).astype(np.float64) - v))), peak_of(v)))
        if errors:
            err, peak = min(errors)
            if err > FAR_RELATIVE_ERR * peak and err > 0:
                return traced, err, peak
    return None


def traced_nodes(layers: Layers, trace: Trace) -> list[tuple[str, str]]:
    """(hls4ml layer name, ONNX node name) of each traced layer that names a node, in graph order."""
    order = {name: i for i, name in enumerate(layers.values)}
    pairs = []
    for traced in trace.values:
        prefix, _, rest = traced.partition("_")
        node = traced if traced in order else rest if rest in order and prefix.isalnum() else None
        if node is not None:
            pairs.append((traced, node))
    return sorted(pairs, key=lambda pair: order[pair[1]])


def layer_values(model: onnx.ModelProto, x: np.ndarray) -> Layers:
    """onnxruntime's values of every node of the unfused graph on x (see with_every_node_output)."""
    from onnx_fuse.verify import run_onnx

    graph = with_every_node_output(model)
    names = [o.name for o in graph.graph.output]
    outputs = dict(zip(names, run_onnx(graph, {graph.graph.input[0].name: x})))
    producer = {node.output[0]: node.name for node in graph.graph.node if node.output}
    values = {producer[name]: v for name, v in outputs.items() if name in producer and v.dtype.kind == "f" and v.size}
    readers: dict[str, list[str]] = {}
    for node in graph.graph.node:
        for name in node.input:
            if name in producer:
                readers.setdefault(producer[name], []).append(node.name)
    return Layers(values, {name: nodes[0] for name, nodes in readers.items() if len(nodes) == 1})


def peak_of(v: np.ndarray) -> float:
    return float(np.max(np.abs(v))) if v.size else 0.0


def type_range(precision: str) -> float:
    """The magnitude an ap_fixed / ap_ufixed type holds (2**integer, or 2**(integer-1) when signed)."""
    match = AP_FIXED.search(precision)
    if match is None:
        return math.inf
    return 2.0 ** (int(match.group(3)) - (0 if match.group(1) else 1))


def with_every_node_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """The unfused graph (a fused node's pre-activation value is a layer of the design too), its Gemms as the MatMul
    and Add hls4ml converts, its nodes named as the hls4ml config names them (qonnx's GiveUniqueNodeNames: Conv_0,
    Relu_0, MatMul_0, ...), every node output a graph output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hls_backend.preprocess import gemms_as_matmuls, inline_and_tag

    graph = gemms_as_matmuls(ModelWrapper(inline_and_tag(model))).transform(GiveUniqueNodeNames()).model
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
