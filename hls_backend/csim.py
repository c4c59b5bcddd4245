"""Run hls4ml C-simulation (compile + predict) in a child process.

A failing C++ assert in C-sim aborts the whole process: running it in a child keeps the caller (API user, pytest)
alive and turns the crash into a CsimError. The child runs this module: `python -m hls_backend.csim JOB_DIR`.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hls_backend.preprocess import load_model

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class CsimError(RuntimeError):
    pass


@dataclass
class CsimResult:
    y: np.ndarray
    output_dir: Path
    convert_seconds: float
    compile_seconds: float
    predict_seconds: float


def run_csim(
    model: str | Path | onnx.ModelProto,
    x: np.ndarray,
    output_dir: str | Path,
    backend: str = "Vivado",
    io_type: str = "io_stream",
    hls_config: dict | None = None,
    fuse: bool = True,
    timeout: float = 900,
    **kwargs: Any,
) -> CsimResult:
    """convert_from_fused_onnx + compile + predict(x), in a child process; raises CsimError if the child fails."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="csim_job_") as tmp:
        job = Path(tmp)
        onnx.save(load_model(model), str(job / "model.onnx"))
        np.save(job / "x.npy", np.ascontiguousarray(x))
        spec = dict(backend=backend, io_type=io_type, hls_config=hls_config, fuse=fuse, output_dir=str(output_dir))
        spec.update(kwargs)
        with open(job / "job.pkl", "wb") as f:
            pickle.dump(spec, f)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-m", "hls_backend.csim", str(job)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        if proc.returncode != 0 or not (job / "y.npy").exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            raise CsimError(f"C-sim child failed (exit code {proc.returncode}):\n{tail}")
        info = json.loads((job / "info.json").read_text())
        return CsimResult(np.load(job / "y.npy"), output_dir, **info)


def _child(job: Path) -> None:
    from hls_backend.convert import convert_from_fused_onnx

    with open(job / "job.pkl", "rb") as f:
        spec = pickle.load(f)
    x = np.load(job / "x.npy")
    t0 = time.perf_counter()
    hls_model = convert_from_fused_onnx(str(job / "model.onnx"), **spec)
    t1 = time.perf_counter()
    hls_model.compile()
    t2 = time.perf_counter()
    y = hls_model.predict(x)
    t3 = time.perf_counter()
    np.save(job / "y.npy", np.asarray(y))
    info = dict(convert_seconds=t1 - t0, compile_seconds=t2 - t1, predict_seconds=t3 - t2)
    (job / "info.json").write_text(json.dumps(info))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
