"""tiny2 end to end: time per stage, and hls4ml C-sim compile/predict fused vs unfused, as ratios.

    python bench/bench_tiny2.py [--samples 16] [--out DIR]

Uses the original project's precision config (models/tiny2_hls4ml.yml), Vivado io_stream Resource.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from onnx_fuse.cli import quiet_libraries
from hls_backend.hls_stage import HlsOptions
from onnx_fuse.pipeline import Options, run

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16, help="random inputs added to the 100 real images")
    parser.add_argument("--out", type=Path, default=None, help="where the hls4ml projects go (default: a temp dir)")
    args = parser.parse_args()
    quiet_libraries()
    logging.getLogger("onnx_fuse").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        hls = HlsOptions(out / "hls", strategy="Resource", reuse_factor=16384, config=MODELS / "tiny2_hls4ml.yml")
        options = Options(samples=args.samples, data=MODELS / "tiny2_float.npz", hls=hls)
        result = run(MODELS / "tiny2_float.h5", out / "tiny2_fused.onnx", options)
    total = sum(result.seconds.values())
    print(f"tiny2 end to end ({result.hls.samples} inputs), seconds per stage:")
    print(f"{'stage':>10} {'seconds':>9} {'share':>7}")
    for stage, seconds in result.seconds.items():
        print(f"{stage:>10} {seconds:>9.2f} {seconds / total:>7.1%}")
    s = result.hls.seconds
    print("\nhls4ml C-sim, fused vs unfused (same config, bit-exact: %s):" % result.hls.bit_exact)
    print(f"{'step':>8} {'unfused s':>10} {'fused s':>9} {'fused/unfused':>14}")
    for step in ("compile", "predict"):
        a, b = s[f"unfused_{step}"], s[f"fused_{step}"]
        print(f"{step:>8} {a:>10.2f} {b:>9.2f} {b / a:>14.2f}")
    n = result.hls.samples
    print(f"predict throughput: unfused {n / s['unfused_predict']:.1f}/s, fused {n / s['fused_predict']:.1f}/s")


if __name__ == "__main__":
    main()
