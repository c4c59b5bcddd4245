"""The hls stage: the fused graph and its unfused reference through hls4ml with one config, C-sim compared.

Both designs are converted with the same per-layer config (hls_backend lowers each ConvRelu to the Conv and Relu
names of the unfused graph), compiled with g++ and run in child processes, and compared bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnx_fuse.errors import InputError, ParityError
from onnx_fuse.fuse import fused_nodes
from onnx_fuse.errors import first_line

log = logging.getLogger("onnx_fuse.hls")


@dataclass
class HlsOptions:
    out_dir: Path
    backend: str = "Vivado"
    io_type: str = "io_stream"
    strategy: str = "Latency"
    precision: str = "ap_fixed<16,6>"
    reuse_factor: int = 1
    config: Path | None = None
    report: bool = False


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
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] | None = None

    def as_dict(self) -> dict:
        return {
            "fused_project": str(self.fused_dir), "unfused_project": str(self.unfused_dir), "samples": self.samples,
            "bit_exact": self.bit_exact, "max_abs_diff": self.max_abs_diff, "fused_in_hls": self.fused_in_hls,
            "pairs": self.pairs, "kept_stages": self.kept,
            "seconds": self.seconds,
            "report": self.report,
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


def check_hls_out(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--hls-out is a file, not a directory: {out_dir}")
    if not out_dir.parent.is_dir():
        raise InputError(f"--hls-out parent directory does not exist: {out_dir.parent}")


def read_config_overrides(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
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

    config = config_from_fused_onnx(
        fused, backend=options.backend, default_precision=options.precision,
        default_reuse_factor=options.reuse_factor,
    )
    config["Model"]["Strategy"] = options.strategy
    if options.config is not None:
        config = merge(config, read_config_overrides(options.config))
    return config


def run_hls(fused: onnx.ModelProto, feeds: dict[str, np.ndarray], options: HlsOptions) -> HlsResult:
    from hls_backend import run_csim
    from hls_backend.csim import CsimError
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
    common = dict(backend=options.backend, io_type=options.io_type, hls_config=config)
    dirs = {True: options.out_dir / "fused", False: options.out_dir / "unfused"}
    log.info("hls4ml: converting, compiling and running both designs (C-sim on %d inputs) ...", len(x))
    # Each C-sim is its own child process: run the two side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {fuse: pool.submit(run_csim, fused, x, dirs[fuse], fuse=fuse, **common) for fuse in dirs}
    outputs, seconds = {}, {}
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
    diff = float(np.max(np.abs(outputs[True].astype(np.float64) - outputs[False]))) if x.size else 0.0
    exact = bool(np.array_equal(outputs[True], outputs[False]))
    hls = HlsResult(dirs[True], dirs[False], len(x), exact, diff, fused_in_write_back(dirs[True]),
                    len(fused_nodes(fused)), seconds=seconds)
    if hls.fused_in_hls < hls.pairs:
        from hls_backend.preprocess import preprocess
        from hls_backend.project import kept_stages

        hls.kept = kept_stages(dirs[True], preprocess(fused)[1])
    if options.report:
        hls.report = write_report(fused, options, common, dirs)
    if not exact:
        raise ParityError(
            f"hls4ml C-sim of the fused design differs from the unfused one (max abs diff {diff:.3g} on "
            f"{len(x)} inputs); projects kept in {options.out_dir} for inspection, no ONNX file written"
        )
    return hls


def fused_in_write_back(project: Path) -> int:
    """Count the ReLU write-back specializations the fused project really contains."""
    from hls_backend.templates import MARKER

    return (project / "firmware" / "parameters.h").read_text().count(MARKER)


def write_report(fused: onnx.ModelProto, options: HlsOptions, common: dict, dirs: dict) -> dict:
    from hls_backend import convert_from_fused_onnx
    from hls_backend.resource_report import bar_chart, comparison_table, design_report, variants_table

    if options.io_type != "io_stream":
        raise InputError("--report needs --io-type io_stream (io_parallel designs have no inter-layer FIFOs)")
    with hls4ml_prints_to_debug_log():
        graphs = {fuse: convert_from_fused_onnx(fused, output_dir=dirs[fuse], fuse=fuse, **common) for fuse in dirs}
    tool = "vitis" if options.backend.lower() == "vitis" else "vivado"
    reports = {fuse: design_report(graphs[fuse], tool) for fuse in graphs}
    table = comparison_table(reports[False], reports[True])
    variants = variants_table(graphs[False], graphs[True])
    bar_chart(reports[False], reports[True], options.out_dir / "report.png")
    (options.out_dir / "report.md").write_text(
        f"# onnx-fuse resource estimate ({options.backend}, io_stream)\n\n"
        f"Calibrated FIFO model (hls_backend/fifo_estimate.py); {tool} HLS, csynth estimate:\n\n{table}\n\n"
        f"FIFO BRAM_18K by tool and storage rule:\n\n{variants}\n\n![FIFO BRAM per layer](report.png)\n"
    )
    return {"unfused": reports[False].as_dict(), "fused": reports[True].as_dict(), "table": table,
            "variants": variants}
