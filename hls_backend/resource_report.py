"""What a generated io_stream design costs in FIFOs and dataflow processes, fused vs unfused.

Read off hls4ml's ModelGraph (the same objects its writer turns into myproject.cpp): every layer with a function
call is a dataflow process; every layer output that hls4ml gives a `#pragma HLS STREAM` depth, except the top
function's own output port, is an internal FIFO. Costs come from the calibrated model in fifo_estimate.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hls_backend.fifo_estimate import FifoCost, stream_fifos

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

    def as_dict(self) -> dict:
        return {
            "tool": self.tool,
            "threshold": self.threshold,
            "processes": len(self.processes),
            "streams": len(self.streams),
            "fifos": self.fifo_count,
            "fifo_bram18k": self.bram18k,
            "fifo_ff": self.ff,
            "per_layer": [
                {"layer": r.layer, "class": r.layer_class, "depth": r.depth, "bits": r.element_bits,
                 "elements": r.elements, "fifos": len(r.fifos), "implementation": r.implementation,
                 "bram18k": r.bram18k, "ff": r.ff}
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


def comparison_table(unfused: DesignReport, fused: DesignReport) -> str:
    """Markdown: per-layer FIFO BRAM_18K side by side, then the totals with their difference.

    A ReLU missing from the fused design whose conv is still there was fused into it: the conv->ReLU FIFO is gone
    and the fused conv's output stream stands where the ReLU's was.
    """
    fused_rows = {r.layer: r for r in fused.streams}
    absorbed_by = {r.layer: r.source for r in unfused.streams if r.layer not in fused_rows and r.source in fused_rows}
    fused_into = {conv: relu for relu, conv in absorbed_by.items()}
    lines = [
        "| layer output | unfused stream (depth x bits x elements) | BRAM_18K | fused stream | BRAM_18K |",
        "|---|---|---:|---|---:|",
    ]
    for row in unfused.streams:
        if row.layer in fused_into:
            fused_cells = f"removed (fused with {fused_into[row.layer]}) | 0"
        else:
            other = fused_rows.get(absorbed_by.get(row.layer, row.layer))
            fused_cells = f"{other.depth} x {other.element_bits} x {other.elements} | {other.bram18k}" if other else "- | 0"
        lines.append(f"| {row.layer} | {row.depth} x {row.element_bits} x {row.elements} | {row.bram18k} | {fused_cells} |")
    totals = [
        ("dataflow processes", len(unfused.processes), len(fused.processes)),
        ("FIFO streams", len(unfused.streams), len(fused.streams)),
        (f"FIFOs ({'one per element' if unfused.tool == 'vivado' else 'packed'}, {unfused.tool})", unfused.fifo_count,
         fused.fifo_count),
        ("FIFO BRAM_18K", unfused.bram18k, fused.bram18k),
        ("FIFO FF", unfused.ff, fused.ff),
    ]
    lines += ["", "| total | unfused | fused | difference |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a} | {b} | {b - a:+d} |" for name, a, b in totals]
    return "\n".join(lines)
