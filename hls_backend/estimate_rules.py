"""Per-layer cost rules of an hls4ml design: BRAM_18K, DSP, FF, LUT, latency and interval of one layer function.

No hls4ml here: a layer is a `LayerSpec` (what hls4ml's templates are instantiated with), so the same rules run on
a converted ModelGraph (hls_backend/estimate.py) and on the rows of real csynth reports (tests/data). Each cost
says which rule produced it:
- analytic: follows from what the generated C++ asks the HLS tool for (a weight ROM of `reuse` words, one
  multiplier per product and cycle, a BRAM FIFO of the stream's depth, a pipeline that takes one input pixel per
  `reuse` cycles), checked against the reports;
- fitted: a linear model with non-negative coefficients (FITTED, fitted by bench/fit_estimate.py on the
  calibration split of tests/data/csynth_instances.tsv only), where the tool's logic mapping has no closed form
  (LUT/FF of adder trees, activation and padding logic, pipeline depths).
A layer kind without a rule is reported as not covered (its costs are None), never as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from hls_backend.fifo_estimate import BRAM18K_DEPTH

# A product is mapped to DSP48 slices only when the data operand is wider than this: 6-bit data (QKeras ReLU
# outputs) and 8-bit designs (tiny2) use no DSP in the reports, 16- and 32-bit ones do.
DSP_MIN_DATA_BITS = 10
# A multiplication by a constant whose canonical-signed-digit form has at most this many non-zero digits is built
# from shifts and adds in LUTs (Vivado HLS 2019.2 reports: exactly the weights with 3+ digits take a DSP).
CONST_SHIFT_ADD_DIGITS = 2
# One DSP48E1 (7-series) multiplies 25 x 18 bits, one DSP48E2 (UltraScale and later) 27 x 18; wider operands take
# ceil(a/A) * ceil(b/18) slices (a 26-bit input times a 10-bit constant: one DSP48E2 in the UltraScale+ reports).
DSP48E1_A_BITS, DSP48E2_A_BITS, DSP_B_BITS = 25, 27, 18
# Weights of a Resource-strategy layer live in a ROM `reuse` words deep; up to this many bits it is built from
# LUTs (the 96 x 8-bit ROM of tiny2's 1x1 conv takes no BRAM, a 2048 x 8-bit one takes one).
ROM_LUT_MAX_BITS = 1024
# BRAM_18K usable width at a given depth (a ROM up to 512 deep uses the 36-bit-wide mode).
ROM_WIDTH_AT_DEPTH = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

# Each process of an io_stream dataflow region adds this many cycles to the design's latency (its start/done
# handshake): the hls4ml MLP of 8 processes (Vitis HLS 2025.2) reports 20 cycles where their latencies add up to 13.
DATAFLOW_HANDSHAKE_CYCLES = 1

# Fitted on the calibration split only (bench/fit_estimate.py prints these; tests/test_estimate.py checks that the
# fit reproduces them). Keys: (rule, resource) -> coefficients of the rule's features_* vector below.
FITTED: dict[tuple[str, str], tuple[float, ...]] = {('mult_latency', 'lut'): (1.3362, 0.3243, 0.0),
 ('mult_latency', 'ff'): (0.0136, 1.4939),
 ('mult_latency_stream', 'ff'): (0.0911, 14.4369, 0.0),
 ('stream_latency_conv', 'cycles'): (0.0, 0.5521, 0.0625),
 ('mult_resource', 'lut'): (0.0657, 1.786, 2390.1693),
 ('mult_resource', 'ff'): (1.0019, 0.2674, 2653.7313),
 ('activation_parallel', 'lut'): (1.8286,),
 ('activation_stream', 'lut'): (3.3235, 60.5648),
 ('activation_stream', 'ff'): (0.502, 54.4821),
 ('pool_stream', 'lut'): (6.7068, 1868.8119),
 ('pool_stream', 'ff'): (8.5302, 584.464),
 ('zeropad_stream', 'lut'): (1.9436, 191.1429),
 ('zeropad_stream', 'ff'): (0.0, 29.1667),
 ('resize_stream', 'lut'): (0.5156, 642.0),
 ('resize_stream', 'ff'): (1.1868, 1297.9091),
 ('softmax', 'lut'): (11.5082,),
 ('softmax', 'ff'): (5.1361,),
 ('top_parallel', 'ff'): (0.6908, 0.0)}
# Fitted scalars: fraction of non-zero weights that need a DSP when the weights are not known; cycles a
# Resource-strategy stream conv spends per input pixel beyond its reuse factor (max) and at least (min); cycles of
# the io_parallel top function beyond its layers; the softmax's pipeline depth; LUT per FIFO (csynth reports FIFO
# LUT only as one summary line per design); nanoseconds of logic a 7-series pipeline stage holds (latency_stages).
FITTED_SCALARS: dict[str, float] = {'dsp_weight_fraction': 0.4989,
 'stream_conv_extra_cycles': 8.0625,
 'stream_conv_min_cycles': 4.0,
 'softmax_cycles': 5.5,
 'series7_stage_ns': 25.0,
 'parallel_top_cycles': 5.0,
 'fifo_lut_each': 50.5576}


@dataclass
class LayerSpec:
    """One layer function as hls4ml instantiates it. For conv, n_in x n_out is the per-pixel product (kernel x
    channels x filters); pixels are the input pixels the stream function reads and the output pixels it writes."""

    name: str
    kind: str  # dense, conv, relu (any elementwise activation), softmax, pool, zeropad, resize, ... (else: not covered)
    io_type: str
    strategy: str  # latency | resource
    n_in: int = 0
    n_out: int = 0
    nonzero: int = 0
    reuse: int = 1
    in_bits: int = 16
    w_bits: int = 16
    acc_bits: int = 16
    out_bits: int = 16
    in_pixels: int = 1
    out_pixels: int = 1
    n_chan: int = 1
    kernel: int = 1
    dsp_weights: int | None = None  # weights with 3+ CSD digits, when the weights are known
    partitions: int = 1  # io_parallel conv: output pixels are computed in this many sequential groups
    fused_activation: str | None = None  # the activation a fused conv/Dense applies in its write-back
    elements: int = 0  # activation/softmax: elements per call
    part: str = ""  # the FPGA part (its family sets the DSP slice and how much logic fits in one clock period)
    clock_ns: float = 5.0


@dataclass
class LayerCost:
    bram18k: int | None
    dsp: int | None
    ff: int | None
    lut: int | None
    lat_min: int | None
    lat_max: int | None
    ii_min: int | None
    ii_max: int | None
    rules: dict[str, str] = field(default_factory=dict)  # resource -> "analytic: ..." / "fitted: ..."
    note: str = ""

    @property
    def covered(self) -> bool:
        return self.lut is not None


def not_covered(why: str) -> LayerCost:
    return LayerCost(None, None, None, None, None, None, None, None, note=f"not covered: {why}")


def is_series7(part: str) -> bool:
    """7-series parts (Zynq-7000, Artix-7, Kintex-7, Virtex-7): DSP48E1 slices, slower logic than UltraScale(+)."""
    return part.lower().startswith("xc7")


def csd_digits(n: int) -> int:
    """Non-zero digits of n in canonical signed-digit (non-adjacent) form."""
    n, digits = abs(int(n)), 0
    while n:
        if n & 1:
            n -= 2 - (n & 3)  # subtract +1 or -1, whichever leaves a multiple of 4
            digits += 1
        n >>= 1
    return digits


def dsp_a_bits(part: str) -> int:
    return DSP48E1_A_BITS if is_series7(part) else DSP48E2_A_BITS


def dsp_per_product(a_bits: int, b_bits: int, part: str = "") -> int:
    if min(a_bits, b_bits) <= DSP_MIN_DATA_BITS:
        return 0
    a = dsp_a_bits(part)
    return min(math.ceil(a_bits / a) * math.ceil(b_bits / DSP_B_BITS),
               math.ceil(b_bits / a) * math.ceil(a_bits / DSP_B_BITS))


def rom_bram18k(depth: int, width_bits: int) -> int:
    """BRAM_18K of a ROM of `depth` words of `width_bits` (LUTs below ROM_LUT_MAX_BITS)."""
    if depth * width_bits <= ROM_LUT_MAX_BITS:
        return 0
    width = next((w for limit, w in ROM_WIDTH_AT_DEPTH if min(depth, BRAM18K_DEPTH) <= limit))
    return math.ceil(depth / BRAM18K_DEPTH) * math.ceil(width_bits / width)


def products(spec: LayerSpec) -> int:
    return spec.n_in * spec.n_out


def block_factor(spec: LayerSpec) -> int:
    """Products computed per cycle of the reuse loop (hls4ml's block_factor / multiplier_limit)."""
    return math.ceil(products(spec) / spec.reuse)


def multiplier_limit(spec: LayerSpec) -> int:
    """hls4ml's Latency-strategy multiplier_limit: zero weights are pruned by the tool."""
    zeros = products(spec) - spec.nonzero
    return max(block_factor(spec) - zeros // spec.reuse, 0)


def linear(rule: str, resource: str, features: tuple[float, ...]) -> int:
    return round(sum(c * f for c, f in zip(FITTED[(rule, resource)], features)))


# Feature vectors of the fitted rules (shared with bench/fit_estimate.py).
def features_mult_latency_lut(spec: LayerSpec, dsp_products: int) -> tuple[float, ...]:
    lut_products = max(multiplier_limit(spec) - dsp_products, 0)
    return (spec.nonzero * spec.acc_bits, lut_products * spec.in_bits, spec.n_out * spec.out_bits)


def features_mult_latency_ff(spec: LayerSpec, pipeline_stages: int) -> tuple[float, ...]:
    return (pipeline_stages * spec.nonzero * spec.acc_bits / max(spec.reuse, 1),
            pipeline_stages * spec.n_out * spec.acc_bits)


def features_mult_latency_stream_ff(spec: LayerSpec) -> tuple[float, ...]:
    """A Latency stream conv pipelines its pixel loop: registers per product bit and cycle, the window of
    kernel x channels input words, and control."""
    return (spec.nonzero * spec.acc_bits / max(spec.reuse, 1), spec.kernel * spec.n_chan * spec.in_bits, 1.0)


def features_stream_latency_conv_cycles(spec: LayerSpec) -> tuple[float, ...]:
    """Cycles per input pixel of a Latency stream conv beyond its reuse factor: in the calibration report (Vitis HLS
    2023.1, reuse factor 1) they grow with log2 of the adder tree's inputs, as the tree's depth does; a pointwise
    (1-wide) kernel takes another code path with no line buffer (its own constant)."""
    if spec.kernel == 1:
        return (0.0, 0.0, 1.0)
    return (1.0, math.log2(max(spec.n_in, 1)), 0.0)


def features_mult_resource(spec: LayerSpec) -> tuple[float, ...]:
    """The reuse loop selects one input and one accumulator per product each cycle (index multiplexers over
    n_in x in_bits and n_out x acc_bits, registered), multiplies in LUTs when no DSP is used, plus control."""
    lut_products = 0 if dsp_per_product(spec.in_bits, spec.w_bits, spec.part) else block_factor(spec)
    return (spec.n_in * spec.in_bits + spec.n_out * spec.acc_bits, lut_products * spec.in_bits * spec.w_bits, 1.0)


def index_table(spec: LayerSpec) -> int:
    """hls4ml's dense_resource_rf_gt_nin_rem0 (reuse > n_in, a multiple of it) fills an `int outidx[reuse]` table
    in a loop of `reuse` cycles on every call; 0 where that code path is not taken. Conv layers inline it into the
    per-pixel loop, where the reports show no such table or loop."""
    if spec.kind == "dense" and spec.strategy == "resource" and spec.reuse > spec.n_in and spec.reuse % spec.n_in == 0:
        return spec.reuse
    return 0


def features_activation_parallel(spec: LayerSpec) -> tuple[float, ...]:
    return (spec.elements * spec.in_bits,)


def features_stream_channels(spec: LayerSpec) -> tuple[float, ...]:
    return (spec.n_chan * spec.in_bits, 1.0)


def features_softmax(spec: LayerSpec) -> tuple[float, ...]:
    return (spec.elements * spec.in_bits,)


def latency_stages(spec: LayerSpec, dsp: int) -> int:
    """Pipeline stages of a Latency-strategy product. UltraScale(+) parts at the reports' 5 ns: 0 (combinational)
    for adder trees of < 8 products per output without DSPs, 1 otherwise (threshold read off the calibration
    reports). 7-series parts: the tool cuts the product and its adder tree into clock periods of a slower fabric,
    a fitted number of stage-nanoseconds over the clock period (at least one stage)."""
    if is_series7(spec.part):
        return max(1, round(FITTED_SCALARS["series7_stage_ns"] / spec.clock_ns))
    per_output = spec.nonzero / max(spec.n_out, 1)
    return 1 if dsp and per_output >= 8 else 0


def mult_layer(spec: LayerSpec) -> LayerCost:
    """Dense, or conv as one dense product per output pixel (hls4ml's conv mult config)."""
    rules: dict[str, str] = {}
    per = dsp_per_product(spec.in_bits, spec.w_bits, spec.part)
    if spec.strategy == "latency":
        limit = multiplier_limit(spec)
        if spec.in_bits <= DSP_MIN_DATA_BITS:
            dsp_products = 0
            rules["dsp"] = f"analytic: {spec.in_bits}-bit data, constant products in LUTs"
        elif spec.dsp_weights is not None:
            dsp_products = min(spec.dsp_weights, limit)
            rules["dsp"] = (f"analytic: min(weights with 3+ CSD digits {spec.dsp_weights}, multiplier limit {limit})")
        else:
            dsp_products = min(round(FITTED_SCALARS["dsp_weight_fraction"] * spec.nonzero), limit)
            rules["dsp"] = "fitted: weights unknown, fitted share of non-zero weights"
        # a constant product needs one slice while the data fits the wide port (the constant fits the narrow one)
        dsp = dsp_products * max(1, math.ceil(spec.in_bits / dsp_a_bits(spec.part))) if dsp_products else 0
        bram = 0
        rules["bram18k"] = "analytic: weights are constants in the logic"
    else:
        dsp_products = block_factor(spec) if per else 0
        dsp = dsp_products * per
        rules["dsp"] = f"analytic: {block_factor(spec)} multipliers (products / reuse) x {per} DSP each"
        bram = rom_bram18k(spec.reuse, block_factor(spec) * spec.w_bits) + rom_bram18k(index_table(spec), 32)
        rules["bram18k"] = f"analytic: weight ROM {spec.reuse} x {block_factor(spec) * spec.w_bits} bits"
        if index_table(spec):
            rules["bram18k"] += f" + index table {spec.reuse} x 32 bits"
    parallel_pixels = 1
    if spec.kind == "conv" and spec.io_type == "io_parallel":
        # io_parallel conv: each of `partitions` pipeline iterations computes out_pixels / partitions pixels
        parallel_pixels = max(spec.out_pixels // max(spec.partitions, 1), 1)
        dsp *= parallel_pixels
    if spec.strategy == "latency":
        stages = latency_stages(spec, dsp)
        lut = linear("mult_latency", "lut", features_mult_latency_lut(spec, dsp_products)) * parallel_pixels
        rules["lut"] = rules["ff"] = "fitted: adder tree and LUT products (Latency)"
        if spec.io_type == "io_stream" and spec.kind == "conv":
            ff = linear("mult_latency_stream", "ff", features_mult_latency_stream_ff(spec))
            rules["ff"] = "fitted: pipelined products and the window registers (Latency, stream conv)"
        else:
            ff = linear("mult_latency", "ff", features_mult_latency_ff(spec, stages)) * parallel_pixels
        call_lat, call_ii = stages, spec.reuse
    else:
        stages = 0
        lut = linear("mult_resource", "lut", features_mult_resource(spec)) * parallel_pixels
        ff = linear("mult_resource", "ff", features_mult_resource(spec)) * parallel_pixels
        rules["lut"] = rules["ff"] = "fitted: multiplexers and accumulators per multiplier (Resource)"
        call_lat = index_table(spec) + spec.reuse + round(FITTED_SCALARS["stream_conv_extra_cycles"])
        call_ii = index_table(spec) + spec.reuse
    if spec.io_type == "io_stream" and spec.kind == "conv":
        if spec.strategy == "resource":
            extra = round(FITTED_SCALARS["stream_conv_extra_cycles"])
            lo = round(FITTED_SCALARS["stream_conv_min_cycles"])
            lat_min, lat_max = spec.in_pixels * lo, spec.in_pixels * (spec.reuse + extra)
            rules["latency"] = (f"analytic+fitted: {spec.in_pixels} input pixels x (reuse {spec.reuse} + {extra} "
                                f"fitted cycles) at most, x {lo} fitted cycles at least")
        else:
            extra = sum(c * f for c, f in zip(FITTED[("stream_latency_conv", "cycles")],
                                               features_stream_latency_conv_cycles(spec)))
            lat_min = lat_max = round(spec.in_pixels * (spec.reuse + extra))
            rules["latency"] = (f"analytic+fitted: {spec.in_pixels} input pixels x (reuse {spec.reuse} + "
                                f"{extra:.2f} fitted cycles of the adder tree)")
        return LayerCost(bram, dsp, ff, lut, lat_min, lat_max, lat_min, lat_max, rules)
    if spec.io_type == "io_stream":  # dense on a stream: reads the input, then one call
        reads = spec.in_pixels
        lat = reads + call_lat
        rules["latency"] = f"analytic: {reads} stream reads + the dense call ({call_lat} cycles)"
        if index_table(spec):
            rules["latency"] += f" (with the {spec.reuse}-cycle index loop)"
        return LayerCost(bram, dsp, ff, lut, lat, lat, lat, lat, rules)
    if spec.kind == "conv":  # hls4ml's conv_*_latency_cl: a loop over the partitions pipelined at interval reuse
        partitions = max(spec.partitions, 1)
        lat, ii = call_ii * partitions + call_lat, call_ii * partitions
    else:
        partitions, lat, ii = 1, call_lat, call_ii
    rules["latency"] = f"analytic: {partitions} pipeline iteration(s) at interval {call_ii}"
    return LayerCost(bram, dsp, ff, lut, lat, lat, ii, ii, rules)


def activation_layer(spec: LayerSpec) -> LayerCost:
    if spec.io_type == "io_parallel":
        lut = linear("activation_parallel", "lut", features_activation_parallel(spec))
        return LayerCost(0, 0, 0, lut, 0, 0, 1, 1, {"lut": "fitted: compare/saturate per element bit",
                                                  "latency": "analytic: combinational, inlined in the top pipeline"})
    feats = features_stream_channels(spec)
    # a loop over several pixels pipelines at one per cycle plus its depth; one word is a single pass (the reports
    # of stream MLPs: 0 or 1 cycle)
    lat = spec.out_pixels + 4 if spec.out_pixels > 1 else 1
    return LayerCost(0, 0, linear("activation_stream", "ff", feats), linear("activation_stream", "lut", feats),
                     lat, lat, lat, lat, {"lut": "fitted: per channel bit + stage control",
                                          "latency": "analytic: one pixel per cycle + 4 (a single word: 1)"})


def write_back_activation(spec: LayerSpec) -> tuple[int, str]:
    """LUT of the activation a fused producer applies in its write-back: the activation's per-element logic
    without a stage of its own (no FIFO, no process control, no registers)."""
    if spec.io_type == "io_parallel":  # per output of one call: the pixels one pipeline iteration computes
        pixels = max(spec.out_pixels // max(spec.partitions, 1), 1) if spec.kind == "conv" else 1
        act = LayerSpec("", "relu", spec.io_type, spec.strategy, elements=spec.n_out * pixels, in_bits=spec.acc_bits)
        return linear("activation_parallel", "lut", features_activation_parallel(act)), "fitted (activation rule)"
    coeffs = FITTED[("activation_stream", "lut")]
    return round(coeffs[0] * spec.n_out * spec.out_bits), "fitted (activation rule, per channel bit only)"


def softmax_layer(spec: LayerSpec) -> LayerCost:
    # exp table read once per element (a dual-port BRAM serves two), inverse table read once: 1024 x 18 bits each
    bram = math.ceil(spec.elements / 2) + 1
    cycles = round(FITTED_SCALARS["softmax_cycles"])
    feats = features_softmax(spec)
    lat = cycles if spec.io_type == "io_parallel" else cycles + spec.in_pixels
    return LayerCost(bram, spec.elements if spec.in_bits > DSP_MIN_DATA_BITS else 0,
                     linear("softmax", "ff", feats), linear("softmax", "lut", feats), lat, lat, 1, 1,
                     {"bram18k": "analytic: ceil(n/2) exp-table copies + 1 inverse table (1024 words)",
                      "dsp": "analytic: one multiply per element", "lut": "fitted", "ff": "fitted",
                      "latency": "fitted: pipeline depth"})


def window_layer(spec: LayerSpec) -> LayerCost:
    """Pooling, zero-padding, resize on a stream: pass pixels through, cost per channel."""
    if spec.io_type != "io_stream":
        return not_covered(f"{spec.kind} in io_parallel has no calibrated rule")
    feats = features_stream_channels(spec)
    if spec.kind == "pool":
        lat = 2 * spec.in_pixels + 4
        how = "analytic: two cycles per input pixel + 4"
    elif spec.kind == "zeropad":
        lat = spec.out_pixels + 3
        how = "analytic: one cycle per output pixel + 3"
    else:
        lat = spec.out_pixels + 2
        how = "analytic: one cycle per output pixel + 2"
    rule = f"{spec.kind}_stream"
    return LayerCost(0, 0, linear(rule, "ff", feats), linear(rule, "lut", feats),
                     lat, lat, lat, lat, {"lut": "fitted: per channel bit + stage control", "latency": how})


def layer_cost(spec: LayerSpec) -> LayerCost:
    if spec.kind in ("dense", "conv"):
        if spec.strategy not in ("latency", "resource"):
            return not_covered(f"strategy {spec.strategy!r} has no rule")
        cost = mult_layer(spec)
        if spec.fused_activation:
            extra, how = write_back_activation(spec)
            cost.lut += extra
            cost.rules["lut"] += f"; + {extra} LUT for the {spec.fused_activation} write-back, {how}"
        return cost
    if spec.kind == "relu":
        return activation_layer(spec)
    if spec.kind in ("scale", "merge"):
        cost = activation_layer(spec)
        cost.note = f"{spec.kind}: LUT/FF/latency by the per-element activation rule (no report of this class)"
        if spec.kind == "scale" and spec.in_bits > DSP_MIN_DATA_BITS and spec.dsp_weights:
            cost.dsp = spec.dsp_weights
            cost.rules["dsp"] = f"analytic: {spec.dsp_weights} constant scales with 3+ CSD digits"
        return cost
    if spec.kind == "softmax":
        return softmax_layer(spec)
    if spec.kind in ("pool", "zeropad", "resize"):
        return window_layer(spec)
    if spec.kind == "clone":  # hls4ml's stream copy for a fan-out: passes pixels through like a zero-padding
        cost = window_layer(replace(spec, kind="zeropad"))
        cost.note = "clone: by the zero-padding stream rule (no report of this class)"
        return cost
    return not_covered(f"no rule for layer kind {spec.kind!r}")


def output_bits(spec: LayerSpec) -> int:
    pixels = max(spec.out_pixels, 1) if spec.kind == "conv" else 1
    return spec.n_out * pixels * spec.out_bits


def top_parallel_features(specs: list[LayerSpec]) -> tuple[float, ...]:
    """io_parallel top function: registers between the layers (output bits of every layer) plus a constant."""
    return (sum(output_bits(s) for s in specs), 1.0)


def dataflow_latency(specs: list[LayerSpec], cycles: list[int]) -> int:
    """An io_stream dataflow chain in graph order: a process starts when its producer's first item arrives, and
    ends after its own run or one item after its producer ends, whichever is later; each process adds a handshake
    cycle. A chain of one-item processes (an MLP) thus takes the sum of its latencies, a chain of convolutions about
    its slowest one's. Parallel branches (skip connections) are counted as if in series: an item's time each."""
    first = finish = 0.0
    for spec, lat in zip(specs, cycles):
        per_item = lat / max(spec.in_pixels, 1)
        finish = max(finish + per_item, first + lat) + DATAFLOW_HANDSHAKE_CYCLES
        first += per_item + DATAFLOW_HANDSHAKE_CYCLES
    return round(finish)


def design_totals(specs: list[LayerSpec], costs: list[LayerCost], io_type: str, fifo: dict[str, int]) -> dict:
    """Whole design from its covered layers. io_parallel: the top function pipelines the layers one after the other
    (latencies add, plus fitted top-level cycles and registers). io_stream: a dataflow region (`dataflow_latency`)
    whose interval is its slowest process's + 1; FIFOs on top."""
    total = {k: sum(getattr(c, k) for c in costs) for k in ("bram18k", "dsp", "ff", "lut")}
    if io_type == "io_parallel":
        total["ff"] += round(sum(c * f for c, f in zip(FITTED[("top_parallel", "ff")], top_parallel_features(specs))))
        top = round(FITTED_SCALARS["parallel_top_cycles"])
        total["latency_min"] = sum(c.lat_min for c in costs) + top
        total["latency_max"] = sum(c.lat_max for c in costs) + top
        total["interval_min"] = max((c.ii_min for c in costs), default=1)
        total["interval_max"] = max((c.ii_max for c in costs), default=1)
    else:
        for k in ("bram18k", "ff", "lut"):
            total[k] += fifo.get(k, 0)
        # the reports' design minimum is (within 0.2%) their maximum: the region waits for its slowest process
        total["latency_min"] = total["latency_max"] = dataflow_latency(specs, [c.lat_max for c in costs])
        total["interval_min"] = max((c.ii_min for c in costs), default=0) + 1
        total["interval_max"] = max((c.ii_max for c in costs), default=0) + 1
    return total
