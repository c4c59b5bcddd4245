"""One design point of a sweep: its parameters, its id, and the task a Dask worker runs for it.

The task gets the fused graph, the parity inputs and onnxruntime's outputs on them (made once by the client),
builds the fused and the unfused hls4ml design of its point in a temporary directory of the worker, runs both
C-sims and returns its row (and, on request, the projects as a tar.gz): results travel back to the client, so
workers need the same Python environment but no filesystem shared with it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnx_fuse.errors import FuseError, InputError, first_line

@dataclass(frozen=True)
class Point:
    precision: str
    reuse_factor: int
    io_type: str
    strategy: str
    backend: str

    def slug(self) -> str:
        precision = re.sub(r"[^A-Za-z0-9]+", "_", self.precision).strip("_")
        return f"{precision}-rf{self.reuse_factor}-{self.io_type}-{self.strategy}-{self.backend}"

    def point_id(self, fingerprint: str) -> str:
        """Readable, and unique to the inputs: a rerun of the same sweep finds its finished points by this name."""
        digest = hashlib.sha256(json.dumps([fingerprint, asdict(self)], sort_keys=True).encode()).hexdigest()
        return f"{self.slug()}-{digest[:10]}"


def grid(precisions: list[str], reuse_factors: list[int], io_types: list[str], strategies: list[str],
         backends: list[str]) -> list[Point]:
    """The cartesian product, each value once, in the order given."""
    axes = [list(dict.fromkeys(values)) for values in (precisions, reuse_factors, io_types, strategies, backends)]
    return [Point(*values) for values in itertools.product(*axes)]


@dataclass
class Shared:
    """What every task needs, sent to the workers once."""

    model: bytes  # the fused ONNX graph, serialized
    x: np.ndarray  # the parity inputs
    reference: np.ndarray  # onnxruntime's output of the fused graph on x
    overrides: dict | None  # --config YML, read by the client


def csim_pids() -> list[int]:
    """This process's C-sim children: each leads its own process group (hls_backend.csim), g++ included."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "hls_backend.csim" in child.cmdline():
                found.append(child.pid)
        except psutil.Error:  # gone meanwhile
            pass
    return found


def kill_csim_children() -> int:
    """Kill the C-sim process groups this worker started (run on every worker when a sweep is cancelled: a
    cancelled Dask task is not stopped while it runs, but its C-sim fails at once when its child dies)."""
    pids = csim_pids()
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


class MemoryWatch:
    """Dask's nanny limits the worker process alone; a point's memory is mostly its C-sim children's (hls4ml, g++).
    This thread adds the worker's and its children's resident memory and kills the C-sim groups when the sum
    passes the worker's limit, so that point fails alone, with the reason in its row."""

    def __init__(self, limit: int | None, period: float = 0.5) -> None:
        self.limit, self.period = limit, period
        self.exceeded: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "MemoryWatch":
        if self.limit:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.period):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            if total > self.limit:
                self.exceeded = total
                kill_csim_children()


def worker_memory_limit() -> int | None:
    try:
        from distributed import get_worker

        return get_worker().memory_manager.memory_limit or None
    except (ImportError, ValueError):  # not on a Dask worker (run_point called directly)
        return None


def worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def run_point(shared: Shared, point: Point, point_id: str, keep_projects: bool = False) -> dict:
    """The task: {"row": {...}, "projects": tar.gz bytes or None}. Never raises for a failure of the point itself
    (bad config, C-sim error, memory limit): that is a row with its error. A worker that dies is Dask's to retry."""
    start = time.perf_counter()
    row: dict[str, Any] = {"point_id": point_id, **asdict(point), "status": "failed", "worker": worker_name()}
    projects = None
    work = Path(tempfile.mkdtemp(prefix="onnx-fuse-point-"))
    limit = worker_memory_limit()
    try:
        with MemoryWatch(limit) as watch:
            try:
                row.update(measure(shared, point, work / "hls"))
                row["status"] = "ok"
                if keep_projects:
                    projects = pack(work / "hls", ("fused", "unfused"))
            except Exception as exc:
                row["error"] = one_line_error(exc)
        if watch.exceeded is not None:
            row["status"] = "failed"
            row["error"] = (f"exceeded the worker's memory limit of {mib(limit)} ({mib(watch.exceeded)} in the worker "
                            "and its C-sim processes): C-sim stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return {"row": row, "projects": projects}


def one_line_error(exc: BaseException) -> str:
    return first_line(exc) if isinstance(exc, FuseError) else f"internal error: {type(exc).__name__}: {first_line(exc)}"


def measure(shared: Shared, point: Point, out_dir: Path) -> dict:
    """Both designs built, compiled and simulated with the point's config: hls_stage.build, as --hls-out does."""
    import onnx

    from hls_backend.accuracy import csim_vs_onnx
    from hls_backend.hls_stage import HlsOptions, build, hls4ml_prints_to_debug_log, hls_config, merge
    from hls_backend.project import layer_calls, stream_count

    fused = onnx.load_from_string(shared.model)
    stream = point.io_type == "io_stream"
    options = HlsOptions(out_dir, point.backend, point.io_type, point.strategy, point.precision, point.reuse_factor,
                         report=stream)
    try:
        with hls4ml_prints_to_debug_log():
            config = hls_config(fused, options)
    except Exception as exc:  # hls4ml or our converter refusing this graph or config
        raise InputError(f"hls4ml cannot convert this graph: {type(exc).__name__}: {first_line(exc)}") from exc
    if shared.overrides:
        config = merge(config, json.loads(json.dumps(shared.overrides)))  # a copy: merge updates in place
    out_dir.mkdir(parents=True)
    hls = build(fused, shared.x, options, config, out_dir)
    row: dict[str, Any] = {"bit_exact": hls.bit_exact, "fused_vs_unfused_max_abs_diff": hls.max_abs_diff,
                           "pairs": hls.pairs, "pairs_in_write_back": hls.fused_in_hls, "samples": hls.samples}
    for side in ("fused", "unfused"):
        accuracy = csim_vs_onnx(hls.outputs[side], shared.reference)
        row[f"{side}_csim_max_abs_err"] = accuracy.max_abs_err
        row[f"{side}_csim_top1_agree"] = accuracy.top1_agree
        if hls.report is not None:
            report = hls.report[side]
            row[f"{side}_processes"] = report["processes"]
            row[f"{side}_fifo_streams"] = report["streams"]
            row[f"{side}_fifo_bram18k"] = report["fifo_bram18k"]
        else:  # io_parallel: no FIFO between layers, and no estimate
            row[f"{side}_processes"] = len(layer_calls(out_dir / side))
            row[f"{side}_fifo_streams"] = stream_count(out_dir / side)
    return row


def pack(root: Path, names: tuple[str, ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            tar.add(root / name, arcname=name)
    return buffer.getvalue()
