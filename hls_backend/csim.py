"""Run hls4ml C-simulation (compile + predict) in a child process.

A failing C++ assert in C-sim aborts the whole process: running it in a child keeps the caller (API user, pytest)
alive and turns the crash into a CsimError. The child runs this module: `python -m hls_backend.csim JOB_DIR`.
Each child leads its own process group (hls4ml's compile runs g++ through a shell script): ChildProcesses kills a
child with everything it started, on a timeout, an exception in the caller, or kill_all() from another thread.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hls_backend.accuracy import Trace
from hls_backend.preprocess import load_model

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class CsimError(RuntimeError):
    pass


class ChildProcesses:
    """Child processes, each in a new session (so a new process group), killed group-wise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._closed = False

    def run(self, args: list[str], timeout: float, **popen: Any) -> subprocess.CompletedProcess:
        with self._lock:
            if self._closed:
                raise CsimError("cancelled before the C-sim child started")
            proc = subprocess.Popen(args, start_new_session=True, **popen)
            self._running.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:  # timeout, or the caller interrupted: no child or g++ may outlive the call
            kill_group(proc)
            proc.wait()
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def kill_all(self) -> None:
        """Kill every running child's group and refuse new children (their run() then fails with CsimError)."""
        with self._lock:
            self._closed = True
            for proc in self._running:
                kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    # Called before the child is reaped, so its pid still names its group (no reuse by another process).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class CsimResult:
    y: np.ndarray
    output_dir: Path
    convert_seconds: float
    compile_seconds: float
    predict_seconds: float
    trace: Trace | None = None  # with run_csim(trace=True)


def run_csim(
    model: str | Path | onnx.ModelProto,
    x: np.ndarray,
    output_dir: str | Path,
    backend: str = "Vivado",
    io_type: str = "io_stream",
    hls_config: dict | None = None,
    fuse: bool = True,
    timeout: float = 900,
    children: ChildProcesses | None = None,
    trace: bool = False,
    **kwargs: Any,
) -> CsimResult:
    """convert + compile + predict(x), in a child process; raises CsimError if the child fails. With trace, every
    layer of hls_config's LayerName records its output (hls4ml's trace) and the result carries them.

    Pass `children` to cancel the run from another thread (ChildProcesses.kill_all()).
    """
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="csim_job_") as tmp:
        job = Path(tmp)
        onnx.save(load_model(model), str(job / "model.onnx"))
        np.save(job / "x.npy", np.ascontiguousarray(x))
        spec = dict(backend=backend, io_type=io_type, hls_config=hls_config, fuse=fuse, output_dir=str(output_dir),
                    trace=trace)
        spec.update(kwargs)
        with open(job / "job.pkl", "wb") as f:
            pickle.dump(spec, f)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
        # g++ writes its intermediate files (.s, .res, ...) in TMPDIR and cannot remove them when its group is
        # killed mid-compile: they go into the job directory, removed with it.
        (job / "tmp").mkdir()
        env["TMPDIR"] = str(job / "tmp")
        proc = (children or ChildProcesses()).run(
            [sys.executable, "-m", "hls_backend.csim", str(job)],
            timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        if proc.returncode != 0 or not (job / "y.npy").exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            raise CsimError(f"C-sim child failed (exit code {proc.returncode}):\n{tail}")
        info = json.loads((job / "info.json").read_text())
        if trace:
            with np.load(job / "trace.npz") as traced:
                info["trace"] = Trace(dict(traced), json.loads((job / "types.json").read_text()))
        return CsimResult(np.load(job / "y.npy"), output_dir, **info)


def _child(job: Path) -> None:
    from hls_backend.conversion import convert

    with open(job / "job.pkl", "rb") as f:
        spec = pickle.load(f)
    x = np.load(job / "x.npy")
    t0 = time.perf_counter()
    trace = spec.pop("trace", False)
    if trace:  # every configured layer records its output (hls4ml's public per-layer Trace key)
        for layer in (spec["hls_config"] or {}).get("LayerName", {}).values():
            layer["Trace"] = True
    hls_model = convert(str(job / "model.onnx"), **spec)
    t1 = time.perf_counter()
    if trace:
        y, traced = hls_model.trace(x)  # compiles the project with its trace hooks, then runs it
        t2 = t3 = time.perf_counter()
        np.savez(job / "trace.npz", **traced)
        types = {layer.name: ap_type_name(layer.get_output_variable().type.precision) for layer in hls_model.get_layers()}
        (job / "types.json").write_text(json.dumps({k: v for k, v in types.items() if v and k in traced}))
    else:
        hls_model.compile()
        t2 = time.perf_counter()
        y = hls_model.predict(x)
        t3 = time.perf_counter()
    np.save(job / "y.npy", np.asarray(y))
    info = dict(convert_seconds=t1 - t0, compile_seconds=t2 - t1, predict_seconds=t3 - t2)
    (job / "info.json").write_text(json.dumps(info))


def ap_type_name(precision: Any) -> str | None:
    """An hls4ml fixed-point or integer type as ap_fixed<W,I> (an ap_int<W> is ap_fixed<W,W>); None for others."""
    if not hasattr(precision, "integer"):
        return None
    return f"ap_{'' if precision.signed else 'u'}fixed<{precision.width},{precision.integer}>"


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
