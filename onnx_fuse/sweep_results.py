"""A sweep's rows as DIR/results.csv, DIR/sweep.md and DIR/sweep.png (estimated FIFO BRAM vs C-sim error)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

COLUMNS = [
    "point_id", "precision", "reuse_factor", "io_type", "strategy", "backend", "status", "bit_exact",
    "fused_vs_unfused_max_abs_diff", "pairs", "pairs_in_write_back", "samples",
    "fused_csim_max_abs_err", "fused_csim_top1_agree", "unfused_csim_max_abs_err", "unfused_csim_top1_agree",
    "fused_processes", "unfused_processes", "fused_fifo_streams", "unfused_fifo_streams",
    "fused_fifo_bram18k", "unfused_fifo_bram18k", "seconds", "worker", "error",
]


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def pair(row: dict, what: str) -> str:
    """'unfused -> fused' for a resource column."""
    a, b = row.get(f"unfused_{what}"), row.get(f"fused_{what}")
    return "-" if a is None and b is None else f"{cell(a)} -> {cell(b)}"


def markdown(rows: list[dict], title: str) -> str:
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [
        f"# {title}", "",
        f"{len(rows)} points, {len(rows) - len(failed)} ok, {len(failed)} failed. C-sim error is the largest absolute "
        "difference from onnxruntime's output of the same graph on the parity inputs; top-1 counts the inputs whose "
        "largest output is at the same place. FIFO BRAM_18K is the calibrated estimate (io_stream designs only; "
        "FIFOs only, not weights or line buffers). Resource columns read unfused -> fused.", "",
        "| point | precision | reuse | io type | strategy | backend | bit-exact fused vs unfused | pairs in write-back "
        "| C-sim max abs err (fused) | top-1 (fused) | processes | FIFO streams | FIFO BRAM_18K | seconds |",
        "|---|---|---:|---|---|---|---|---:|---:|---:|---|---|---|---:|",
    ]
    for r in rows:
        if r.get("status") != "ok":
            continue
        lines.append(
            f"| {r['point_id']} | {cell(r['precision'])} | {r['reuse_factor']} | {r['io_type']} | {r['strategy']} "
            f"| {r['backend']} | {cell(r.get('bit_exact'))} | {r.get('pairs_in_write_back')} of {r.get('pairs')} "
            f"| {cell(r.get('fused_csim_max_abs_err'))} | {r.get('fused_csim_top1_agree')}/{r.get('samples')} "
            f"| {pair(r, 'processes')} | {pair(r, 'fifo_streams')} | {pair(r, 'fifo_bram18k')} | {cell(r.get('seconds'))} |"
        )
    if failed:
        lines += ["", "## Failed points", "", "| point | error |", "|---|---|"]
        lines += [f"| {r['point_id']} | {cell(r.get('error'))} |" for r in failed]
    return "\n".join(lines) + "\n"


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (lower is better), sorted by x."""
    front, best = [], math.inf
    for x, y in sorted(set(points)):
        if y < best:
            front.append((x, y))
            best = y
    return front


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    plotted = 0
    for side, marker in (("unfused", "s"), ("fused", "o")):
        xy = [(r[f"{side}_fifo_bram18k"], r[f"{side}_csim_max_abs_err"]) for r in rows if r.get("status") == "ok"
              and r.get(f"{side}_fifo_bram18k") is not None and math.isfinite(r.get(f"{side}_csim_max_abs_err", math.nan))]
        if not xy:
            continue
        plotted += len(xy)
        dots = ax.scatter(*zip(*xy), marker=marker, label=f"{side} ({len(xy)} points)", alpha=0.8)
        front = pareto(xy)
        ax.step(*zip(*front), where="post", color=dots.get_facecolor()[0], linewidth=1, label=f"{side} Pareto front")
    skipped = sum(1 for r in rows if r.get("status") == "ok" and r.get("fused_fifo_bram18k") is None)
    if not plotted:
        ax.text(0.5, 0.5, "no io_stream point finished: FIFO BRAM is estimated for io_stream designs only",
                ha="center", va="center", transform=ax.transAxes, wrap=True)
    else:
        ax.legend(fontsize=8)
        ax.set_yscale("symlog", linthresh=1e-6)
    note = f" ({skipped} io_parallel points not shown: no FIFOs)" if skipped else ""
    ax.set_xlabel("estimated FIFO BRAM_18K")
    ax.set_ylabel("C-sim max abs error vs onnxruntime")
    ax.set_title(f"{title}{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
