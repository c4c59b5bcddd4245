"""The run's summary as the CLI prints it (text, or JSON with --json); onnx_fuse.fuse's Result.summary() too."""

from __future__ import annotations

import json


def normalise_line(passes) -> str:
    changed = [f"{p.name} ({len(p.changes)} change{'s' if len(p.changes) != 1 else ''})" for p in passes if p.changes]
    return ", ".join(changed) if changed else f"graph already normal ({len(passes)} passes, no changes)"


def fused_line(by_op: dict[str, int]) -> str:
    """'5 Conv->Relu pairs into onnx_fuse::ConvRelu, 1 Dense->LeakyRelu pair into onnx_fuse::DenseLeakyRelu'"""
    from onnx_fuse.patterns import BY_OP

    parts = []
    for op, count in by_op.items():
        p = BY_OP[op]
        parts.append(f"{count} {p.producer.prefix}->{p.activation.op} pair{'s' if count != 1 else ''} into onnx_fuse::{op}")
    return ", ".join(parts) or "0 pairs"


def summary(result) -> str:
    f = result.fusion
    lines = [
        f"{result.input} -> {result.output if result.output is not None else '(in memory)'}",
        f"  fused {fused_line(f.by_op)} (nodes {f.nodes_before} -> {f.nodes_after})",
        "  normalise: " + normalise_line(result.passes),
    ]
    if result.load_note:
        lines.insert(1, f"  loaded with {result.loader} ({result.load_note})")
    lines += [f"  left unfused: {reason}" for reason in f.left_unfused]
    for p in result.parity:
        bound = "exact" if p.atol == 0 and p.rtol == 0 else f"atol {p.atol:g} + rtol {p.rtol:g}"
        nonfinite = f", {p.nonfinite} non-finite output values" if p.nonfinite else ""
        # top-1 agreement matters against the source model (QKeras, Keras); fused vs unfused is exact anyway
        top1 = f", same top-1 class on {p.argmax_agree}/{p.samples}" if p.argmax_agree is not None and p.atol else ""
        lines.append(
            f"  parity {p.name}: max abs err {p.max_abs_err:.3g} on {p.samples} inputs{top1} ({bound}{nonfinite}) "
            f"{'ok' if p.ok else 'FAILED'}"
        )
    if not result.parity:
        lines.append("  parity: not checked (--no-verify)")
    if result.hls is not None:
        h = result.hls
        lines.append(
            f"  hls4ml C-sim fused vs unfused: {'bit-exact' if h.bit_exact else 'DIFFERENT'} on {h.samples} inputs "
            f"(projects {h.fused_dir}, {h.unfused_dir})"
        )
        lines.append(f"  hls4ml: {h.fused_in_hls} of {h.pairs} pairs apply their activation in the layer's write-back")
        if h.absorbed:
            lines.append(f"  hls4ml: {len(h.absorbed)} scale stages in the write-back too: {', '.join(h.absorbed)}")
        if h.scale_types:
            lines.append(f"  hls4ml: {h.scale_types}")
        if h.accuracy is not None:
            lines.append(f"  {h.accuracy.line()}")
            if h.accuracy.warning:
                lines.append(f"  hls4ml: warning: {h.accuracy.warning}")
        lines += [f"  hls4ml: {line}" for line in h.kept]
        if h.report is not None:
            lines.append("")
            lines.append(h.report["table"])
            lines.append("")
    lines.append("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))
    return "\n".join(lines)


def as_json(result) -> str:
    return json.dumps(
        {
            "input": str(result.input),
            "output": str(result.output) if result.output is not None else None,
            "source": result.source_kind,
            "loader": result.loader,
            "pairs_fused": result.fusion.pairs,
            "pairs_by_op": result.fusion.by_op,
            "fused_nodes": result.fusion.fused_nodes,
            "left_unfused": result.fusion.left_unfused,
            "nodes_before": result.fusion.nodes_before,
            "nodes_after": result.fusion.nodes_after,
            "passes": {p.name: p.changes for p in result.passes},
            "parity": [p.as_dict() for p in result.parity],
            "seconds": result.seconds,
            "hls": result.hls.as_dict() if result.hls is not None else None,
        },
        indent=2,
    )
