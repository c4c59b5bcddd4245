"""The hls stage: the fused graph and its unfused reference through hls4ml with one config, C-sim compared.

Both designs are converted with the same per-layer config (hls_backend lowers each ConvRelu to the Conv and Relu
names of the unfused graph), compiled with g++ and run in child processes, and compared bit for bit.

DIR is the user's: everything is checked before the heavy work, the projects are built in a hidden staging
directory inside DIR (same filesystem, so the final moves are renames; DIR's parent need not be writable) and moved
into place only when complete. DIR/.onnx-fuse.json lists the entries a run wrote; a later run replaces exactly
those, and no other file in DIR is ever touched.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hls_backend.accuracy import Accuracy, Trace, csim_vs_onnx, far_warning
from onnx_fuse.errors import SIGNALS, InputError, ParityError, first_line
from onnx_fuse.patterns import fused_nodes
from onnx_fuse.regular_file import open_regular

log = logging.getLogger("onnx_fuse.hls")
# What onnx-fuse may write in DIR; MANIFEST names those a run wrote.
ENTRIES = ("fused", "unfused", "report.md", "report.png")
MANIFEST = ".onnx-fuse.json"
STAGING_PREFIX = ".onnx-fuse-staging-"
TRACE_INPUTS = 32  # enough to find where a far design leaves the model
DEFAULT_PRECISION = "ap_fixed<16,6>"  # hls4ml's


@dataclass
class HlsOptions:
    out_dir: Path
    backend: str = "Vivado"
    io_type: str = "io_stream"
    strategy: str = "Latency"
    # None: hls4ml's default ap_fixed<16,6>, and a float-scale model's scale stages typed from its scales
    precision: str | None = None
    reuse_factor: int = 1
    config: Path | None = None
    report: bool = False
    force: bool = False  # accept a non-empty DIR that onnx-fuse did not write (its files are still left alone)


@dataclass
class HlsResult:
    fused_dir: Path
    unfused_dir: Path
    samples: int
    bit_exact: bool
    max_abs_diff: float
    fused_in_hls: int = 0  # pairs whose activation the fused design applies in the producer's write-back
    pairs: int = 0  # fused pairs in the file
    kept: list[str] = field(default_factory=list)  # why each other pair keeps its activation stage
    absorbed: list[str] = field(default_factory=list)  # "stage into layer" for each epilogue stage in a write-back
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    accuracy: Accuracy | None = None  # C-sim against onnxruntime; None for a feature-map output (layouts differ)
    scale_types: str | None = None  # the types derived from a float-scale model's scales, used or not
    # C-sim outputs, one row per input, keyed "fused" / "unfused" (for comparisons against onnxruntime)
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "fused_project": str(self.fused_dir), "unfused_project": str(self.unfused_dir), "samples": self.samples,
            "bit_exact": self.bit_exact, "max_abs_diff": self.max_abs_diff, "fused_in_hls": self.fused_in_hls,
            "pairs": self.pairs, "kept_stages": self.kept, "absorbed_stages": self.absorbed,
            "seconds": self.seconds,
            "report": self.report,
            "csim_vs_onnx": self.accuracy.as_dict() if self.accuracy is not None else None,
            "scale_types": self.scale_types,
        }


@contextlib.contextmanager
def hls4ml_prints_to_debug_log() -> Iterator[None]:
    """hls4ml prints its progress on stdout, which is ours (the summary, --json): keep it for -v instead."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    for line in buffer.getvalue().splitlines():
        log.debug("hls4ml: %s", line)


def last_line(exc: BaseException) -> str:
    """A failed child's output ends with the error that matters (a Python exception or the compiler's)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def written_by_us(out_dir: Path) -> set[str] | None:
    """The entries an earlier run wrote in DIR (its manifest), or None when DIR has no valid manifest."""
    try:
        entries = json.loads((out_dir / MANIFEST).read_text()).get("entries")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entries, list) or not set(entries) <= set(ENTRIES):
        return None
    return set(entries)


def foreign_entry(out_dir: Path, ours: set[str]) -> Path | None:
    """An entry of DIR named like one onnx-fuse writes but written by someone else."""
    for name in ENTRIES + (MANIFEST,):
        path = out_dir / name
        if (path.exists() or path.is_symlink()) and name not in ours:
            return path
    return None


def check_hls_out(options: HlsOptions, input_path: Path, output_path: Path) -> None:
    """Everything about DIR (and the config) that can be checked before the heavy work."""
    out_dir = options.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--hls-out is a file, not a directory: {out_dir}")
    if not out_dir.parent.is_dir():
        raise InputError(f"--hls-out parent directory does not exist: {out_dir.parent}")
    target = out_dir.resolve()
    for what, path in (("the output", output_path), ("the input", input_path)):
        resolved = path.resolve()
        if resolved == target or any(resolved.is_relative_to(target / name) for name in ENTRIES + (MANIFEST,)):
            raise InputError(f"--hls-out {out_dir} would overwrite {what} {path}")
    try:  # DIR is created in its parent, or the projects are staged in DIR (O_TMPFILE probe: no name appears)
        with tempfile.TemporaryFile(dir=out_dir if out_dir.exists() else out_dir.parent):
            pass
    except OSError as exc:
        raise InputError(f"--hls-out {out_dir} is not writable ({exc.strerror})") from exc
    if out_dir.exists():
        ours = written_by_us(out_dir)
        others = [p for p in out_dir.iterdir() if not p.name.startswith(STAGING_PREFIX)]
        if others and ours is None and not options.force:
            raise InputError(
                f"--hls-out {out_dir} is not empty and holds no earlier onnx-fuse output: choose a new or empty "
                "directory, or pass --force to add the projects next to its files"
            )
        foreign = foreign_entry(out_dir, (ours or set()) | ({MANIFEST} if ours is not None else set()))
        if foreign is not None:
            raise InputError(f"--hls-out: {foreign} exists and onnx-fuse did not write it; move it away first")
    if options.config is not None:
        read_config_overrides(options.config)


def read_config_overrides(path: Path) -> dict:
    import yaml

    try:
        with open_regular(path, "hls4ml config") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read hls4ml config {path}: {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise InputError(f"hls4ml config {path} must be a mapping (Model: ..., LayerName: ...)")
    return data


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        current = base.get(key)
        base[key] = merge(dict(current) if isinstance(current, dict) else {}, value) if isinstance(value, dict) else value
    return base


def hls_config(fused: onnx.ModelProto, options: HlsOptions) -> dict:
    from hls_backend import config_from_fused_onnx
    from hls_backend.alpha_types import SCALE_TYPES_KEY, sets_defaults, with_types
    from hls_backend.conversion import types_from_scales

    config = config_from_fused_onnx(
        fused, backend=options.backend, default_precision=default_precision(options),
        default_reuse_factor=options.reuse_factor, alpha_types=False,
    )
    config["Model"]["Strategy"] = options.strategy
    derived = types_from_scales(fused, config, options.backend)
    user = read_config_overrides(options.config) if options.config is not None else {}
    if options.precision is None and not sets_defaults(user):  # a default the user chose wins
        with_types(config, derived)
    config = merge(config, user)
    config["Model"][SCALE_TYPES_KEY] = derived  # for the summary: which of them the design uses
    return config


def default_precision(options: HlsOptions) -> str:
    return options.precision or DEFAULT_PRECISION


def scale_types_line(config: dict, options: HlsOptions) -> str | None:
    """What the design does with the types derived from a float-scale model's scales; None for other models."""
    from hls_backend.alpha_types import SCALE_TYPES_KEY, not_used

    derived = config["Model"].get(SCALE_TYPES_KEY) or {}
    if not derived:
        return None
    stages = sum("scale" in types for types in derived.values())
    what = f"scale and bias of {stages} ApplyAlpha layers, {len(derived) - stages} layers a float-scale Quant reads"
    unused = not_used(config, derived)
    if options.precision is not None:
        return f"types from the float scales not used ({what}): --precision {options.precision} types those layers"
    if len(unused) == len(derived):
        return f"types from the float scales not used ({what}): {options.config} sets the default types"
    if unused and options.config is not None:
        return f"types from the float scales for {what}; {options.config} sets its own for {', '.join(unused)}"
    return f"types from the float scales for {what}"


def run_hls(fused: onnx.ModelProto, feeds: dict[str, np.ndarray], options: HlsOptions) -> HlsResult:
    from hls_backend.preprocess import UnsupportedModelError
    from hls_backend.registration import UnsupportedHls4mlError

    if len(feeds) != 1:
        raise InputError("the hls stage handles single-input models only")
    x = next(iter(feeds.values()))
    try:
        with hls4ml_prints_to_debug_log():
            config = hls_config(fused, options)
    except (UnsupportedModelError, UnsupportedHls4mlError) as exc:
        raise InputError(str(exc)) from exc
    except InputError:
        raise
    except Exception as exc:  # hls4ml's ONNX parser rejecting the graph (a layer or attribute it does not handle)
        raise InputError(f"hls4ml cannot convert this graph: {type(exc).__name__}: {first_line(exc)}") from exc
    out_dir = options.out_dir
    created = not out_dir.exists()
    out_dir.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=STAGING_PREFIX)).resolve()
    try:
        hls = build(fused, x, options, config, staging)
        install(staging, out_dir)  # projects that differ are installed too, kept for inspection
    except BaseException:  # failed or interrupted: nothing half-built stays, DIR is as it was
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    if not hls.bit_exact:
        raise ParityError(
            f"hls4ml C-sim of the fused design differs from the unfused one (max abs diff {hls.max_abs_diff:.3g} on "
            f"{hls.samples} inputs); projects kept in {out_dir} for inspection, no ONNX file written"
        )
    return hls


def build(fused: onnx.ModelProto, x: np.ndarray, options: HlsOptions, config: dict, staging: Path) -> HlsResult:
    from hls_backend.csim import ChildProcesses, CsimError, run_csim

    common = dict(backend=options.backend, io_type=options.io_type, hls_config=config)
    dirs = {True: staging / "fused", False: staging / "unfused"}
    log.info("hls4ml: converting, compiling and running both designs (C-sim on %d inputs) ...", len(x))
    # Each C-sim is its own child process: run the two side by side.
    children, pool = ChildProcesses(), ThreadPoolExecutor(max_workers=2)
    outputs, seconds = {}, {}
    try:
        jobs = {fuse: pool.submit(run_csim, fused, x, dirs[fuse], fuse=fuse, children=children, **common) for fuse in dirs}
        for fuse, job in jobs.items():
            label = "fused" if fuse else "unfused"
            try:
                result = job.result()
            except CsimError as exc:
                raise InputError(f"hls4ml C-sim of the {label} design failed: {last_line(exc)}") from exc
            except subprocess.TimeoutExpired as exc:
                raise InputError(f"hls4ml C-sim of the {label} design timed out after {exc.timeout:.0f} s") from exc
            outputs[fuse] = result.y.reshape(len(x), -1)
            seconds[f"{label}_compile"] = result.compile_seconds
            seconds[f"{label}_predict"] = result.predict_seconds
    finally:
        # On a failure or an interrupt the other design's child (and its g++) is killed too; the workers then
        # remove their csim_job_* directories before we go on.
        children.kill_all()
        pool.shutdown(wait=True)
    diff = float(np.max(np.abs(outputs[True].astype(np.float64) - outputs[False]))) if x.size else 0.0
    exact = bool(np.array_equal(outputs[True], outputs[False]))
    final = {fuse: options.out_dir / path.name for fuse, path in dirs.items()}
    from hls_backend.project import absorbed_stages

    hls = HlsResult(final[True], final[False], len(x), exact, diff, fused_in_write_back(dirs[True]),
                    len(fused_nodes(fused)), absorbed=absorbed_stages(dirs[True]), seconds=seconds,
                    outputs={"fused": outputs[True], "unfused": outputs[False]},
                    scale_types=scale_types_line(config, options))
    hls.accuracy = accuracy_against_onnx(fused, x, outputs[True])
    if hls.accuracy is not None and hls.accuracy.far:
        trace = trace_design(fused, x, common, staging)
        hls.accuracy.warning = far_warning(fused, x, default_precision(options), trace)
        if hls.accuracy.warning is not None and options.config is not None:
            hls.accuracy.warning += f" (layers whose types {options.config} sets keep them: raise those there)"
        if hls.accuracy.warning is not None and hls.scale_types and options.precision is not None:
            hls.accuracy.warning += "; or leave out --precision: the scale stages then get types from the float scales"
    if hls.fused_in_hls < hls.pairs:
        from hls_backend.preprocess import preprocess
        from hls_backend.project import kept_stages

        hls.kept = kept_stages(dirs[True], preprocess(fused)[1])
    if options.report:
        hls.report = write_report(fused, options, common, dirs, staging)
    for project in dirs.values():
        name_final_dir(project, staging, options.out_dir)
    return hls  # bit_exact False is the caller's to act on (run_hls raises after installing the projects)


def accuracy_against_onnx(fused: onnx.ModelProto, x: np.ndarray, y_csim: np.ndarray) -> Accuracy | None:
    """The design against the model it was built from (fused vs unfused says nothing here: equal by construction).
    Compared where the output is a vector per input; a feature map is channels-last in hls4ml, so not element-wise
    comparable."""
    from onnx_fuse.verify import run_onnx

    y_onnx = run_onnx(fused, {fused.graph.input[0].name: x})[0]
    if y_onnx.ndim > 2:
        return None
    return csim_vs_onnx(y_csim, y_onnx.reshape(len(x), -1))


def trace_design(fused: onnx.ModelProto, x: np.ndarray, common: dict, staging: Path) -> Trace | None:
    """hls4ml's trace of the unfused design (its layers are the ONNX nodes) on the first TRACE_INPUTS inputs: one
    more compile, in a directory removed afterwards. None when it fails (the warning then reads the ONNX values
    alone)."""
    from hls_backend.csim import CsimError, run_csim

    log.info("hls4ml: the design is far from the model: tracing its layers (one more compile) ...")
    with tempfile.TemporaryDirectory(dir=staging, prefix="trace-") as tmp:
        try:
            return run_csim(fused, x[:TRACE_INPUTS], Path(tmp), fuse=False, trace=True, **common).trace
        except (CsimError, subprocess.TimeoutExpired) as exc:
            log.warning("hls4ml: tracing the design failed: %s", last_line(exc))
            return None


def name_final_dir(project: Path, staging: Path, out_dir: Path) -> None:
    """hls4ml records the absolute OutputDir in hls4ml_config.yml: name where the project ends up, not staging."""
    config = project / "hls4ml_config.yml"
    if config.exists():
        config.write_text(config.read_text().replace(str(staging), str(out_dir.resolve())))


def install(staging: Path, out_dir: Path) -> None:
    """Move the staged entries into DIR and the earlier run's entries out (into staging, removed with it)."""
    SIGNALS.commit()  # DIR changes from here: a later signal no longer stops the run
    new = sorted(p.name for p in staging.iterdir())
    old = written_by_us(out_dir) or set()
    foreign = foreign_entry(out_dir, old | {MANIFEST})
    if foreign is not None:  # appeared during the run
        raise InputError(f"--hls-out: {foreign} appeared during the run and onnx-fuse did not write it; nothing moved")
    (staging / MANIFEST).write_text(json.dumps({"written_by": "onnx-fuse", "entries": new}) + "\n")
    replaced = staging / ".replaced"
    replaced.mkdir()
    with interrupts_deferred():
        for name in sorted(old | set(new)):
            if (out_dir / name).exists() or (out_dir / name).is_symlink():
                os.rename(out_dir / name, replaced / name)
        for name in new + [MANIFEST]:
            os.rename(staging / name, out_dir / name)
    shutil.rmtree(staging)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for a few renames, then deliver them: an interrupt must not leave DIR half old, half new.
    (Python runs signal handlers in the main thread only; elsewhere there is nothing to defer.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if callable(handler):
            signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if callable(handler):
                signal.signal(sig, handler)
        if caught:
            previous[caught[0]](caught[0], None)


def fused_in_write_back(project: Path) -> int:
    """Count the ReLU write-back specializations the fused project really contains."""
    from hls_backend.templates import MARKER

    return (project / "firmware" / "parameters.h").read_text().count(MARKER)


def write_report(fused: onnx.ModelProto, options: HlsOptions, common: dict, dirs: dict, staging: Path) -> dict:
    from hls_backend import convert
    from hls_backend.estimate import estimate_graph, layer_table, totals_table

    with hls4ml_prints_to_debug_log():
        graphs = {fuse: convert(fused, output_dir=dirs[fuse], fuse=fuse, **common) for fuse in dirs}
    estimates = {fuse: estimate_graph(graphs[fuse]) for fuse in graphs}
    # headed: on the terminal it follows the FIFO table's own "| total |" table
    whole = ("Whole design, all layers and FIFOs (estimate from the converted designs; not synthesis):\n\n"
             f"{totals_table(estimates[False], estimates[True])}")
    design = (f"Whole design (estimate from the converted designs, hls_backend/estimate.py; not synthesis):\n\n"
              f"{layer_table(estimates[False], estimates[True])}\n")
    result = {"estimate": {"unfused": estimates[False].as_dict(), "fused": estimates[True].as_dict()}}
    if options.io_type != "io_stream":  # no inter-layer FIFOs: the whole-design estimate only
        (staging / "report.md").write_text(f"# onnx-fuse resource estimate ({options.backend}, io_parallel)\n\n{design}")
        return {**result, "table": whole}
    from hls_backend.resource_report import bar_chart, comparison_table, design_report, variants_table

    tool = "vitis" if options.backend.lower() == "vitis" else "vivado"
    reports = {fuse: design_report(graphs[fuse], tool) for fuse in graphs}
    table = comparison_table(reports[False], reports[True])
    variants = variants_table(graphs[False], graphs[True])
    bar_chart(reports[False], reports[True], staging / "report.png")
    (staging / "report.md").write_text(
        f"# onnx-fuse resource estimate ({options.backend}, io_stream)\n\n"
        f"Calibrated FIFO model (hls_backend/fifo_estimate.py); {tool} HLS, csynth estimate:\n\n{table}\n\n"
        f"FIFO BRAM_18K by tool and storage rule:\n\n{variants}\n\n![FIFO BRAM per layer](report.png)\n\n{design}"
    )
    return {"unfused": reports[False].as_dict(), "fused": reports[True].as_dict(), "table": f"{table}\n\n{whole}",
            "variants": variants, **result}
