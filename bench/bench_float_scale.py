"""Float-scale quantized models (Brevitas' default quantizers) through hls4ml: the epilogue in the write-back.

    python bench/bench_float_scale.py [--io-type io_stream io_parallel] [--strategy Latency]
        [--models NAME ...] [--precision P] [--out DIR]

For each bundled model and io type: fused and unfused hls4ml C-sim from one config (the Quant nodes set the types;
with no --precision, hls4ml's default ap_fixed<16,6> and the scale stages typed from the float scales, as `onnx-fuse
--hls-out` does; --precision P types the rest, scale stages included, with P), pairs with their activation and scale
stages in the write-back, dataflow processes and FIFO streams of both designs, bit-exactness, and the fused design
against Brevitas' stored outputs.
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import hls_backend
from hls_backend import project
from hls_backend.csim import run_csim
from hls_backend.hls_stage import DEFAULT_PRECISION, hls4ml_prints_to_debug_log
from onnx_fuse.cli import quiet_libraries
from onnx_fuse.fusion import fuse
from onnx_fuse.load import load_onnx
from onnx_fuse.normalise import normalise

MODELS = Path(__file__).resolve().parent.parent / "models"
NAMES = ("digits_qcnn_float", "digits_fs_cnn_pt", "digits_fs_mlp")


def measure(name: str, io_type: str, strategy: str, out: Path, precision: str | None) -> str:
    normalised, _ = normalise(load_onnx(MODELS / f"{name}.onnx"))
    fused, report = fuse(normalised)
    data = np.load(MODELS / f"{name}.npz")
    x, y_brevitas = data["x"], data["y_brevitas"]
    with hls4ml_prints_to_debug_log():
        config = hls_backend.config_from_fused_onnx(
            fused, default_precision=precision or DEFAULT_PRECISION, alpha_types=precision is None)
        config["Model"]["Strategy"] = strategy
    dirs = {f: out / f"{name}_{io_type}_{strategy}_{'fused' if f else 'unfused'}" for f in (True, False)}
    with ThreadPoolExecutor(2) as pool:
        jobs = {f: pool.submit(run_csim, fused if f else normalised, x, d, io_type=io_type, hls_config=config, fuse=f)
                for f, d in dirs.items()}
        got, ref = jobs[True].result(), jobs[False].result()
    params = (got.output_dir / "firmware" / "parameters.h").read_text()
    calls = [len(project.layer_calls(d)) for d in (ref.output_dir, got.output_dir)]
    streams = [project.stream_count(d) for d in (ref.output_dir, got.output_dir)] if io_type == "io_stream" else None
    y = got.y.reshape(y_brevitas.shape)
    diff = np.abs(y.astype(np.float64) - y_brevitas)
    return (
        f"| {name} | {io_type} {strategy} | {params.count('activation in the write-back')} of {report.pairs} | "
        f"{len(project.absorbed_stages(got.output_dir))} | {calls[0]} -> {calls[1]} | "
        f"{f'{streams[0]} -> {streams[1]}' if streams else '-'} | {np.array_equal(got.y, ref.y)} | "
        f"{diff.max():.3g} | {(y.argmax(1) == y_brevitas.argmax(1)).mean():.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--io-type", nargs="+", default=["io_stream", "io_parallel"])
    parser.add_argument("--strategy", nargs="+", default=["Latency"])
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    parser.add_argument("--precision", default=None, help="hls4ml's default precision, for every layer")
    parser.add_argument("--out", type=Path, default=None, help="where the hls4ml projects go (default: a temp dir)")
    args = parser.parse_args()
    quiet_libraries()
    print("| model | io | pairs in write-back | scale stages absorbed | processes unfused -> fused | FIFO streams "
          "| bit-exact fused vs unfused | max abs diff vs Brevitas | top-1 agreement with Brevitas |")
    print("|---|---|---:|---:|---|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for io_type in args.io_type:
                for strategy in args.strategy:
                    row = measure(name, io_type, strategy, args.out or Path(tmp), args.precision)
                    print(row, flush=True)


if __name__ == "__main__":
    main()
