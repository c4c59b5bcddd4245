"""What a generated io_stream design costs in FIFOs and dataflow processes, fused vs unfused.

Read off hls4ml's ModelGraph (the same objects its writer turns into myproject.cpp): every layer with a function
call is a dataflow process; every layer output that hls4ml gives a `#pragma HLS STREAM` depth, except the top
function's own output port, is an internal FIFO. Costs come from the calibrated model in fifo_estimate.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hls_backend.fifo_estimate import SRL_MAX_BITS, FifoCost, stream_fifos

XC7Z020_BRAM18K = 280


@dataclass
class StreamRow:
    layer: str
    layer_class: str
    source: str  # the layer feeding this one
    depth: int
    element_bits: int
    elements: int
    fifos: list[FifoCost]

    @property
    def bram18k(self) -> int:
        return sum(f.bram18k for f in self.fifos)

    @property
    def ff(self) -> int:
        return sum(f.ff for f in self.fifos)

    @property
    def lut(self) -> int:
        return sum(f.lut for f in self.fifos)

    @property
    def implementation(self) -> str:
        return self.fifos[0].implementation


@dataclass
class DesignReport:
    tool: str
    threshold: str
    processes: list[str] = field(default_factory=list)
    streams: list[StreamRow] = field(default_factory=list)

    @property
    def fifo_count(self) -> int:
        return sum(len(r.fifos) for r in self.streams)

    @property
    def bram18k(self) -> int:
        return sum(r.bram18k for r in self.streams)

    @property
    def ff(self) -> int:
        return sum(r.ff for r in self.streams)

    @property
    def lut(self) -> int:
        return sum(r.lut for r in self.streams)

    def as_dict(self) -> dict:
        return {
            "tool": self.tool,
            "threshold": self.threshold,
            "processes": len(self.processes),
            "streams": len(self.streams),
            "fifos": self.fifo_count,
            "fifo_bram18k": self.bram18k,
            "fifo_ff": self.ff,
            "fifo_lut_rough": self.lut,
            "per_layer": [
                {"layer": r.layer, "class": r.layer_class, "depth": r.depth, "bits": r.element_bits,
                 "elements": r.elements, "fifos": len(r.fifos), "implementation": r.implementation,
                 "bram18k": r.bram18k, "ff": r.ff, "lut_rough": r.lut}
                for r in self.streams
            ],
        }


def design_report(model, tool: str = "vivado", threshold: str = "csynth") -> DesignReport:
    """`model` is an io_stream hls4ml ModelGraph (converted; compile is not needed)."""
    if model.config.get_config_value("IOType") != "io_stream":
        raise ValueError("FIFO report needs an io_stream design (io_parallel has no inter-layer FIFOs)")
    ports = {v.name for v in model.get_output_variables()}
    report = DesignReport(tool, threshold)
    for layer in model.get_layers():
        if not layer.get_attr("function_cpp"):
            continue  # the Input layer and in-place reshapes emit no call
        report.processes.append(layer.name)
        var = layer.get_output_variable()
        if var.name in ports or not var.pragma:
            continue
        depth = int(var.pragma[1])
        bits = var.type.precision.width
        elements = int(var.shape[-1])
        report.streams.append(
            StreamRow(
                layer.name, layer.class_name, layer.get_input_node().name, depth, bits, elements,
                stream_fifos(depth, bits, elements, tool, threshold),
            )
        )
    return report


def variants_table(unfused_graph, fused_graph, budget: int = XC7Z020_BRAM18K) -> str:
    """FIFO BRAM_18K for both HLS tools and both shift-register thresholds, with the fit against a BRAM budget
    (FIFOs only: weights, line buffers and interfaces come on top)."""
    lines = [
        f"| tool | FIFO storage rule | unfused BRAM_18K | fused BRAM_18K | difference | fits {budget}? unfused / fused |",
        "|---|---|---:|---:|---:|---|",
    ]
    for tool in ("vivado", "vitis"):
        for threshold in ("csynth", "rtl"):
            a = design_report(unfused_graph, tool, threshold).bram18k
            b = design_report(fused_graph, tool, threshold).bram18k
            rule = f"SRL up to {SRL_MAX_BITS[threshold]} bits ({threshold})"
            fits = " / ".join("yes" if n <= budget else "no" for n in (a, b))
            lines.append(f"| {tool} | {rule} | {a} | {b} | {b - a:+d} | {fits} |")
    return "\n".join(lines)


def describe(row: StreamRow) -> str:
    return f"{row.depth} x {row.element_bits} x {row.elements} {'BRAM' if row.bram18k else 'SRL'}"


def counterparts(unfused: DesignReport, fused: DesignReport) -> dict[str, StreamRow | str | None]:
    """For each unfused stream: the fused stream standing in its place, the names of the stages fused into the
    producer if the stream was a FIFO that fusion removed, or None if it has no counterpart.

    Layers missing from the fused design whose chain of inputs leads back to a producer still there were fused into
    it (its activation, and an epilogue stage such as ApplyAlpha before it): the FIFOs between them are gone and the
    producer's output stream stands where the last one's was.
    """
    fused_rows = {r.layer: r for r in fused.streams}
    unfused_rows = {r.layer: r for r in unfused.streams}
    alive = set(fused.processes)

    def producer_of(name: str) -> str | None:
        while name not in alive and name in unfused_rows:
            name = unfused_rows[name].source
        return name if name in fused_rows else None

    chains: dict[str, list[str]] = {}  # producer -> the layers fused into it, in stream order
    for row in unfused.streams:
        if row.layer not in alive and producer_of(row.source) is not None:
            chains.setdefault(producer_of(row.source), []).append(row.layer)
    result: dict[str, StreamRow | str | None] = {}
    for row in unfused.streams:
        producer = producer_of(row.source) if row.layer not in alive else None
        if row.layer in alive and row.layer not in fused_rows:
            # it took the stage after it, which wrote the design's output: it writes the output port now
            after = unfused.processes[unfused.processes.index(row.layer) + 1:]
            result[row.layer] = next((name for name in after if name not in alive), "the stage after it")
        elif row.layer in chains:
            result[row.layer] = " + ".join(chains[row.layer])
        elif producer is not None and chains[producer][-1] != row.layer:
            result[row.layer] = " + ".join(chains[producer])
        elif producer is not None:
            result[row.layer] = fused_rows[producer]
        else:
            result[row.layer] = fused_rows.get(row.layer)
    return result


def bar_chart(unfused: DesignReport, fused: DesignReport, path) -> None:
    """PNG: FIFO BRAM_18K per layer output, unfused vs fused (a fused pair's conv->ReLU FIFO drops to zero)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = counterparts(unfused, fused)
    labels = [r.layer for r in unfused.streams]
    before = [r.bram18k for r in unfused.streams]
    after = [pairs[r.layer].bram18k if isinstance(pairs[r.layer], StreamRow) else 0 for r in unfused.streams]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels)), 4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], before, 0.4, label=f"unfused ({unfused.bram18k})")
    ax.bar([x + 0.2 for x in xs], after, 0.4, label=f"fused ({fused.bram18k})")
    ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("FIFO BRAM_18K")
    ax.set_title(f"FIFO BRAM_18K per layer output ({unfused.tool}, {unfused.threshold} estimate)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_table(unfused: DesignReport, fused: DesignReport) -> str:
    """Markdown: per-layer FIFO BRAM_18K side by side, then the totals with their difference."""
    pairs = counterparts(unfused, fused)
    lines = [
        "| layer output | unfused stream (depth x bits x elements, storage) | BRAM_18K | fused stream | BRAM_18K |",
        "|---|---|---:|---|---:|",
    ]
    for row in unfused.streams:
        other = pairs[row.layer]
        fused_cells = f"{describe(other)} | {other.bram18k}" if isinstance(other, StreamRow) else (
            f"removed (fused with {other}) | 0" if other else "- | 0"
        )
        lines.append(f"| {row.layer} | {describe(row)} | {row.bram18k} | {fused_cells} |")
    totals = [
        ("dataflow processes", len(unfused.processes), len(fused.processes)),
        ("FIFO streams", len(unfused.streams), len(fused.streams)),
        (f"FIFOs ({'one per element' if unfused.tool == 'vivado' else 'packed'}, {unfused.tool})", unfused.fifo_count,
         fused.fifo_count),
        ("FIFO BRAM_18K", unfused.bram18k, fused.bram18k),
        ("FIFO FF", unfused.ff, fused.ff),
        ("FIFO LUT (rough, not calibrated)", unfused.lut, fused.lut),
    ]
    lines += ["", "| total | unfused | fused | difference |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a} | {b} | {b - a:+d} |" for name, a, b in totals]
    return "\n".join(lines)
