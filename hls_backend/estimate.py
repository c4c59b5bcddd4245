"""Whole-design estimate of a converted (not compiled) hls4ml ModelGraph: per layer and in total BRAM_18K, DSP, FF,
LUT, latency (min-max cycles) and interval, with the rule behind each number (hls_backend/estimate_rules.py),
io_stream FIFOs from the calibrated FIFO model (fifo_estimate.py), and the fit against a part's capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hls_backend import estimate_rules as rules
from hls_backend.estimate_rules import LayerCost, LayerSpec
from hls_backend.passes import WRITE_BACK

RESOURCES = ("bram18k", "dsp", "ff", "lut")

# name prefix -> (BRAM_18K, DSP, FF, LUT), from each device's data sheet (the xc7z020 and xcu250 rows are also the
# `Available` lines of the csynth reports in tests/data)
PARTS: dict[str, tuple[int, int, int, int]] = {
    "xc7z020": (280, 220, 106400, 53200),
    "xc7a100t": (270, 240, 126800, 63400),
    "xczu9eg": (1824, 2520, 548160, 274080),
    "xcku115": (4320, 5520, 1326720, 663360),
    "xcvu9p": (4320, 6840, 2364480, 1182240),
    "xcvu13p": (5376, 12288, 3456000, 1728000),
    "xcu250": (5376, 12288, 3456000, 1728000),
    "xcu50": (2688, 5952, 1743360, 871680),
}

ACTIVATIONS_WITH_RULE = {"linear", "clip"}  # and every ReLU variant


def part_capacity(part: str) -> tuple[str, tuple[int, int, int, int]] | None:
    key = part.lower().replace("-", "")
    for name, capacity in PARTS.items():
        if key.startswith(name):
            return name, capacity
    return None


@dataclass
class LayerEstimate:
    name: str
    layer_class: str
    spec: LayerSpec | None
    cost: LayerCost

    def as_dict(self) -> dict:
        c = self.cost
        return {"layer": self.name, "class": self.layer_class, "covered": c.covered,
                **{k: getattr(c, k) for k in RESOURCES},
                "latency_min": c.lat_min, "latency_max": c.lat_max, "interval_min": c.ii_min, "interval_max": c.ii_max,
                "rules": c.rules, "note": c.note}


@dataclass
class DesignEstimate:
    io_type: str
    layers: list[LayerEstimate]
    fifo_count: int = 0
    fifo: dict[str, int] = field(default_factory=dict)  # bram18k, ff, lut of the io_stream FIFOs
    total: dict[str, int] = field(default_factory=dict)

    @property
    def not_covered(self) -> list[str]:
        return [f"{e.name} ({e.cost.note})" for e in self.layers if not e.cost.covered]

    def as_dict(self) -> dict:
        return {"total": {**self.total, "not_covered": self.not_covered},
                "fifos": {"count": self.fifo_count, **self.fifo},
                "layers": [e.as_dict() for e in self.layers]}


def precision_width(var_or_type) -> int:
    precision = getattr(var_or_type, "precision", None) or var_or_type.type.precision
    return int(precision.width)


def quantized(data: np.ndarray, weight) -> np.ndarray:
    """The integer the HLS tool sees for each weight (value x 2^fractional bits, in the weight type)."""
    precision = weight.type.precision
    frac = int(precision.width) - int(getattr(precision, "integer", precision.width))
    scaled = np.asarray(data, dtype=np.float64) * 2.0**frac
    mode = str(getattr(precision, "rounding_mode", "TRN")).upper()
    return (np.round(scaled) if "RND" in mode else np.floor(scaled)).astype(np.int64)


def weight_stats(layer) -> tuple[int, int, int]:
    """(width bits, non-zero weights, weights with 3+ canonical-signed-digit digits) of the layer's weights."""
    weight = layer.weights["weight"]
    q = quantized(weight.data, weight).ravel()
    nonzero = int(np.count_nonzero(q))
    csd = sum(1 for v in q[q != 0] if rules.csd_digits(int(v)) > rules.CONST_SHIFT_ADD_DIGITS)
    return precision_width(weight), nonzero, csd


def attr(layer, name: str, default=None):
    value = layer.get_attr(name, default)
    return default if value is None else value


def stream_words(layer) -> int:
    """Stream words a layer reads per frame: the pixels of the nearest producer that emits a call (an in-place
    Reshape/Flatten in between only renames the stream)."""
    node = layer.get_input_node()
    while node is not None and not node.get_attr("function_cpp") and node.class_name != "Input":
        node = node.get_input_node()
    shape = [int(s) for s in (node or layer).get_output_variable().shape]
    return int(np.prod(shape[:-1])) if len(shape) > 1 else 1


def spec_of(layer, io_type: str, target: dict) -> LayerSpec | str:
    """LayerSpec of one hls4ml layer (`target`: the design's part and clock period), or the reason it has no rule."""
    cls = layer.class_name
    out_var = layer.get_output_variable()
    in_var = layer.get_input_variable()
    shape = [int(s) for s in out_var.shape]
    in_shape = [int(s) for s in in_var.shape]
    strategy = str(attr(layer, "strategy", "latency")).lower()
    common = dict(name=layer.name, io_type=io_type, strategy=strategy, reuse=int(attr(layer, "reuse_factor", 1)),
                  in_bits=precision_width(in_var), out_bits=precision_width(out_var), **target)
    channels = shape[-1]
    pixels = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    in_pixels = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
    write_back = attr(layer, WRITE_BACK)
    fused = write_back["op"] if isinstance(write_back, dict) else None
    if cls == "Dense" or cls in ("Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D",
                                 "DepthwiseConv1D", "DepthwiseConv2D"):
        if "weight" not in layer.weights:
            return f"{cls} without weights"
        w_bits, nonzero, csd = weight_stats(layer)
        accum = layer.get_attr("accum_t")
        acc_bits = precision_width(accum) if accum is not None else common["out_bits"]
        if cls == "Dense":
            n_in, n_out = int(attr(layer, "n_in")), int(attr(layer, "n_out"))
            reads = stream_words(layer) if io_type == "io_stream" else 1
            return LayerSpec(kind="dense", n_in=n_in, n_out=n_out, nonzero=nonzero, w_bits=w_bits, acc_bits=acc_bits,
                             dsp_weights=csd, in_pixels=reads, out_pixels=1, n_chan=n_out, fused_activation=fused,
                             elements=n_out, **common)
        kernel = int(attr(layer, "filt_height", 1)) * int(attr(layer, "filt_width", 1))
        n_chan = int(attr(layer, "n_chan"))
        depthwise = cls.startswith("Depthwise")
        n_in, n_out = (kernel, n_chan) if depthwise else (kernel * n_chan, int(attr(layer, "n_filt")))
        in_px = int(attr(layer, "in_height", 1)) * int(attr(layer, "in_width", 1))
        return LayerSpec(kind="conv", n_in=n_in, n_out=n_out, nonzero=nonzero, w_bits=w_bits, acc_bits=acc_bits,
                         dsp_weights=csd, in_pixels=in_px, out_pixels=pixels, n_chan=n_chan, kernel=kernel,
                         partitions=int(attr(layer, "n_partitions", 1)), fused_activation=fused, **common)
    if cls in ("Activation", "ParametrizedActivation", "OnnxFuseClip"):
        activation = str(attr(layer, "activation", cls)).lower()
        if "relu" not in activation and activation not in ACTIVATIONS_WITH_RULE and cls != "OnnxFuseClip":
            return f"activation {activation!r} (a table lookup) has no calibrated rule"
        return LayerSpec(kind="relu", n_in=int(np.prod(shape)), n_out=int(np.prod(shape)), in_pixels=pixels,
                         out_pixels=pixels, n_chan=channels, elements=int(np.prod(shape)) if io_type == "io_parallel"
                         else channels, **common)
    if cls in ("BatchNormalization", "ApplyAlpha", "Merge"):
        kind = "merge" if cls == "Merge" else "scale"
        csd = None
        if kind == "scale" and "scale" in layer.weights:
            scale = layer.weights["scale"]
            q = quantized(np.broadcast_to(scale.data, shape), scale).ravel()
            if io_type == "io_stream":
                q = q[-channels:]  # a stream stage multiplies one pixel's channels per cycle
            csd = sum(1 for v in q[q != 0] if rules.csd_digits(int(v)) > rules.CONST_SHIFT_ADD_DIGITS)
        return LayerSpec(kind=kind, n_in=int(np.prod(shape)), n_out=int(np.prod(shape)), in_pixels=pixels,
                         out_pixels=pixels, n_chan=channels, dsp_weights=csd,
                         elements=int(np.prod(shape)) if io_type == "io_parallel" else channels, **common)
    if cls == "Softmax":
        return LayerSpec(kind="softmax", n_in=channels, n_out=channels, elements=channels, in_pixels=pixels,
                         out_pixels=pixels, n_chan=channels, **common)
    if cls in ("Pooling1D", "Pooling2D"):
        return LayerSpec(kind="pool", in_pixels=in_pixels, out_pixels=pixels, n_chan=channels, **common)
    if cls in ("ZeroPadding1D", "ZeroPadding2D"):
        return LayerSpec(kind="zeropad", in_pixels=in_pixels, out_pixels=pixels, n_chan=channels, **common)
    if cls == "Clone" and io_type == "io_stream":
        return LayerSpec(kind="clone", in_pixels=in_pixels, out_pixels=pixels, n_chan=channels, **common)
    if cls == "Resize":
        return LayerSpec(kind="resize", in_pixels=in_pixels, out_pixels=pixels, n_chan=channels, **common)
    return f"no rule for hls4ml layer class {cls}"


def estimate_graph(model, tool: str | None = None) -> DesignEstimate:
    """Estimate of a converted hls4ml ModelGraph (io_parallel or io_stream; Latency or Resource strategy)."""
    io_type = model.config.get_config_value("IOType")
    if tool is None:
        tool = "vitis" if "vitis" in str(model.config.get_config_value("Backend", "Vivado")).lower() else "vivado"
    target = dict(part=str(model.config.get_config_value("Part", "")),
                  clock_ns=float(model.config.get_config_value("ClockPeriod", 5) or 5))
    layers = []
    for layer in model.get_layers():
        if not layer.get_attr("function_cpp"):
            continue  # the Input layer and in-place reshapes emit no call
        spec = spec_of(layer, io_type, target)
        if isinstance(spec, str):
            layers.append(LayerEstimate(layer.name, layer.class_name, None, rules.not_covered(spec)))
        else:
            layers.append(LayerEstimate(layer.name, layer.class_name, spec, rules.layer_cost(spec)))
    design = DesignEstimate(io_type, layers)
    fifos = []
    if io_type == "io_stream":
        from hls_backend.resource_report import design_report

        fifos = [f for row in design_report(model, tool).streams for f in row.fifos]
        design.fifo_count = len(fifos)
        design.fifo = {"bram18k": sum(f.bram18k for f in fifos), "ff": sum(f.ff for f in fifos),
                       "lut": round(len(fifos) * rules.FITTED_SCALARS["fifo_lut_each"])}
    design.total = rules.design_totals([e.spec for e in layers if e.cost.covered],
                                       [e.cost for e in layers if e.cost.covered], io_type, design.fifo)
    return design


def fits(used: int, available: int, uncovered: int) -> bool | None:
    """True / False, or None when layers without a rule leave the total a lower bound that is within capacity."""
    if used > available:
        return False
    return None if uncovered else True


def fits_lines(total: dict[str, int], part: str, uncovered: int = 0) -> list[str]:
    found = part_capacity(part)
    if found is None:
        return [f"part {part}: capacity not known here (known: {', '.join(PARTS)}), no fit check"]
    name, capacity = found
    lines = []
    for resource, available in zip(RESOURCES, capacity):
        used = total[resource]
        verdict = {True: "fits", False: "does NOT fit",
                   None: f"fit unknown: {uncovered} layer(s) without a rule are not counted"}[fits(used, available,
                                                                                             uncovered)]
        lines.append(f"{resource.upper() if resource != 'bram18k' else 'BRAM_18K'}: {used} of {available} on {name} "
                     f"({100 * used / available:.0f}%) {verdict}")
    return lines


def fmt(value) -> str:
    return "n/a" if value is None else str(value)


def span(low: int | None, high: int | None) -> str:
    return "n/a" if low is None else (str(low) if low == high else f"{low}-{high}")


def layer_table(unfused: DesignEstimate, fused: DesignEstimate) -> str:
    """Markdown: per layer of each design, then the totals side by side."""
    lines = []
    for title, design in (("unfused", unfused), ("fused", fused)):
        lines += [f"{title} design ({design.io_type}):", "",
                  "| layer | class | BRAM_18K | DSP | FF | LUT | latency (cycles) | interval | note |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for e in design.layers:
            c = e.cost
            written_back = e.spec.fused_activation if e.spec else None
            note = c.note or (f"+ {written_back} write-back" if written_back else "")
            lat, ii = span(c.lat_min, c.lat_max), span(c.ii_min, c.ii_max)
            lines.append(f"| {e.name} | {e.layer_class} | {fmt(c.bram18k)} | {fmt(c.dsp)} | {fmt(c.ff)} | {fmt(c.lut)} "
                         f"| {lat} | {ii} | {note} |")
        if design.io_type == "io_stream":
            f = design.fifo
            lines.append(f"| {design.fifo_count} FIFOs | | {f['bram18k']} | 0 | {f['ff']} | {f['lut']} | | | |")
        lines.append("")
    return "\n".join(lines) + "\n" + totals_table(unfused, fused)


def totals_table(unfused: DesignEstimate, fused: DesignEstimate) -> str:
    lines = ["| total | unfused | fused | difference |", "|---|---:|---:|---:|"]
    for key, label in (("bram18k", "BRAM_18K"), ("dsp", "DSP"), ("ff", "FF"), ("lut", "LUT"),
                       ("latency_min", "latency min (cycles)"), ("latency_max", "latency max (cycles)"),
                       ("interval_min", "interval min (cycles)"), ("interval_max", "interval max (cycles)")):
        a, b = unfused.total[key], fused.total[key]
        lines.append(f"| {label} | {a} | {b} | {b - a:+d} |")
    for title, design in (("unfused", unfused), ("fused", fused)):
        if design.not_covered:
            lines.append(f"\n{title}: totals leave out {len(design.not_covered)} layer(s) with no rule: "
                         + "; ".join(design.not_covered))
    return "\n".join(lines)


def cycles_to_us(cycles: int, clock_ns: float) -> str:
    return f"{cycles * clock_ns / 1000:.4g} us"
