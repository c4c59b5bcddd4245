"""`onnx-fuse estimate MODEL ...`: resources and latency of the fused and the unfused hls4ml design, from the
converted ModelGraphs (no HLS tool, no compile, no C-sim)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from onnx_fuse.errors import InputError, first_line, library_failures_are_input_errors


def parser() -> argparse.ArgumentParser:
    from onnx_fuse.cli import OneLineParser

    p = OneLineParser(
        prog="onnx-fuse estimate",
        description="Estimate BRAM_18K, DSP, FF, LUT, latency and interval of the hls4ml design of MODEL, fused and\n"
        "unfused, per layer and in total, from hls4ml's converted model (no Vivado/Vitis, no compile).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 estimated, 1 internal error, 2 bad input (one line on stderr)",
    )
    p.add_argument("model", type=Path, help="input model: .h5, .keras, .json (architecture) or .onnx")
    p.add_argument("--weights", type=Path, metavar="W.h5", help="weights of a .json model (default: MODEL_weights.h5)")
    p.add_argument("--config", type=Path, metavar="YML", help="hls4ml config overrides (Model:/LayerName: ...)")
    p.add_argument("--backend", choices=["Vivado", "Vitis"], default="Vivado", help="hls4ml backend (default: Vivado)")
    p.add_argument("--io-type", choices=["io_stream", "io_parallel"], default="io_stream", help="default: io_stream")
    p.add_argument("--strategy", choices=["Latency", "Resource", "resource_unrolled"], default="Latency",
                   help="default: Latency")
    p.add_argument("--precision", help="default precision (default: ap_fixed<16,6>, and a float-scale model's scale "
                   "stages typed from its scales)")
    p.add_argument("--reuse-factor", type=int, default=1, help="default reuse factor (default: 1)")
    p.add_argument("--part", default="xc7z020", help="FPGA part for the fit check (default: xc7z020)")
    p.add_argument("--clock-period", type=float, default=5.0, metavar="NS", help="clock period in ns (default: 5)")
    p.add_argument("--json", action="store_true", help="the estimate as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of internal errors")
    return p


def fused_graph(model: Path, weights: Path | None, log) -> tuple:
    """Load, export, normalise and fuse as the main command does (no parity check, nothing written)."""
    from onnx_fuse.fusion import fuse
    from onnx_fuse.load import load
    from onnx_fuse.normalise import normalise
    from onnx_fuse.pipeline import export

    seconds = {}
    for name, what in (("load", f"loading {model}"), ("export", "exporting to ONNX"),
                       ("normalise", "normalising the graph"), ("fuse", "fusing pairs")):
        log(f"{what} ...")
        start = time.perf_counter()
        with library_failures_are_input_errors(name):
            if name == "load":
                source = load(model, weights)
            elif name == "export":
                exported = export(source)
            elif name == "normalise":
                normalised, _ = normalise(exported)
            else:
                fused, report = fuse(normalised)
        seconds[name] = time.perf_counter() - start
    return fused, report, seconds


def estimate(args: argparse.Namespace, log) -> dict:
    from hls_backend import convert
    from hls_backend.estimate import estimate_graph
    from hls_backend.hls_stage import HlsOptions, hls4ml_prints_to_debug_log, hls_config
    from hls_backend.preprocess import UnsupportedModelError
    from hls_backend.registration import UnsupportedHls4mlError

    fused, report, seconds = fused_graph(args.model, args.weights, log)
    log("converting the fused and the unfused design with hls4ml (no compile) ...")
    start = time.perf_counter()
    options = HlsOptions(Path("."), args.backend, args.io_type, args.strategy, args.precision, args.reuse_factor,
                         args.config)
    designs = {}
    with tempfile.TemporaryDirectory(prefix="onnx-fuse-estimate-") as tmp:  # hls4ml writes nothing when converting
        try:
            with hls4ml_prints_to_debug_log():
                config = hls_config(fused, options)
                for fuse in (False, True):
                    graph = convert(fused, output_dir=Path(tmp) / str(fuse), backend=args.backend,
                                                    io_type=args.io_type, hls_config=config, fuse=fuse,
                                                    part=args.part, clock_period=args.clock_period)
                    designs["fused" if fuse else "unfused"] = estimate_graph(graph)
        except (UnsupportedModelError, UnsupportedHls4mlError) as exc:
            raise InputError(str(exc)) from exc
        except InputError:
            raise
        except Exception as exc:  # hls4ml's ONNX parser rejecting the graph
            raise InputError(f"hls4ml cannot convert this graph: {type(exc).__name__}: {first_line(exc)}") from exc
    seconds["convert+estimate"] = time.perf_counter() - start
    return {"designs": designs, "pairs": report.pairs, "seconds": seconds}


def as_json(args: argparse.Namespace, result: dict) -> str:
    from hls_backend.estimate import fits, part_capacity

    found = part_capacity(args.part)
    part = {"name": args.part, "known_as": found[0] if found else None,
            "capacity": dict(zip(("bram18k", "dsp", "ff", "lut"), found[1])) if found else None,
            "clock_period_ns": args.clock_period}
    if found:
        designs = result["designs"]
        part["fits"] = {name: {k: fits(designs[name].total[k], part["capacity"][k], len(designs[name].not_covered))
                               for k in part["capacity"]} for name in ("unfused", "fused")}
    return json.dumps({"model": str(args.model), "backend": args.backend, "io_type": args.io_type,
                       "strategy": args.strategy, "pairs_fused": result["pairs"],
                       "unfused": result["designs"]["unfused"].as_dict(), "fused": result["designs"]["fused"].as_dict(),
                       "part": part, "seconds": result["seconds"]}, indent=2)


def summary(args: argparse.Namespace, result: dict) -> str:
    from hls_backend.estimate import cycles_to_us, fits_lines, layer_table

    unfused, fused = result["designs"]["unfused"], result["designs"]["fused"]
    lines = [f"{args.model}: hls4ml {args.backend} {args.io_type} {args.strategy}, {result['pairs']} pair(s) fused "
             "(estimate from the converted designs; not synthesis)", "", layer_table(unfused, fused), ""]
    for title, design in (("unfused", unfused), ("fused", fused)):
        t = design.total
        lines.append(f"{title}: latency {t['latency_min']}-{t['latency_max']} cycles "
                     f"({cycles_to_us(t['latency_max'], args.clock_period)} at {args.clock_period:g} ns), "
                     f"interval {t['interval_max']} cycles")
        lines += [f"  {line}" for line in fits_lines(t, args.part, len(design.not_covered))]
    lines.append("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in result["seconds"].items()))
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    """The `estimate` subcommand; `argv` is what follows the word `estimate`."""
    from onnx_fuse.cli import failure_exit_code, native_noise_dropped, quiet_libraries, setup_logging

    args = parser().parse_args(argv)
    quiet_libraries()
    handler = setup_logging(args.verbose, args.quiet or args.json)
    if args.reuse_factor < 1:
        print("onnx-fuse: error: --reuse-factor must be at least 1", file=sys.stderr)
        return 2
    if args.clock_period <= 0:
        print("onnx-fuse: error: --clock-period must be positive", file=sys.stderr)
        return 2
    log = logging.getLogger("onnx_fuse").info
    try:
        with native_noise_dropped(handler, args.verbose):
            result = estimate(args, log)
    except Exception as exc:
        return failure_exit_code(exc, args.verbose)
    try:
        print(as_json(args, result) if args.json else summary(args, result))
    except BrokenPipeError:
        pass
    return 0
