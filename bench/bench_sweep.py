"""`onnx-fuse sweep` throughput: points per minute of the same sweep on a local cluster of 1 and of 2 workers.

    python bench/bench_sweep.py [--model models/digits_mlp.h5] [--data models/digits_mlp.npz]
                                [--precision ap_fixed<16,6> ap_fixed<10,4>] [--reuse-factor 1 2]
                                [--io-type io_parallel] [--workers 1 2]

Each run is the real command (`python -m onnx_fuse sweep ...`) into a new directory, so nothing is skipped. The
sweep time is what the command itself reports from the submission of the points (the cluster is up) to its last
point; "prepare" is the rest of the command's wall time (loading, exporting and fusing the model once, starting
and stopping the cluster). Points per minute = points / sweep time.
On a machine shared with other jobs the numbers are pessimistic: a worker waits for a core.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ELAPSED = re.compile(r"sweep: (\d+)/(\d+) points done \((\d+) failed\), \d+ running, elapsed (?:(\d+)m)?(\d+)s")


def seconds(match: re.Match) -> int:
    return int(match.group(4) or 0) * 60 + int(match.group(5))


def one(args: argparse.Namespace, workers: int, out: Path) -> dict:
    command = [sys.executable, "-m", "onnx_fuse", "sweep", str(args.model), "--out", str(out), "--workers",
               str(workers), "--samples", "4", "--precision", *args.precision,
               "--reuse-factor", *map(str, args.reuse_factor), "--io-type", *args.io_type]
    if args.data:
        command += ["--data", str(args.data)]
    start = time.perf_counter()
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"sweep with {workers} workers failed ({run.returncode}):\n{run.stderr[-2000:]}")
    last = [m for m in ELAPSED.finditer(run.stderr)][-1]
    points, sweep = int(last.group(2)), seconds(last)
    return {"workers": workers, "points": points, "failed": int(last.group(3)), "sweep": sweep,
            "prepare": wall - sweep, "per_minute": points / sweep * 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "digits_mlp.h5")
    p.add_argument("--data", type=Path, default=REPO / "models" / "digits_mlp.npz")
    p.add_argument("--precision", nargs="+", default=["ap_fixed<16,6>", "ap_fixed<10,4>"])
    p.add_argument("--reuse-factor", nargs="+", type=int, default=[1, 2])
    p.add_argument("--io-type", nargs="+", default=["io_parallel"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for workers in args.workers:
            rows.append(one(args, workers, Path(tmp) / f"w{workers}"))
            print(f"... {workers} worker(s) done", file=sys.stderr)
    base = rows[0]["per_minute"]
    print("| workers | points | failed | prepare (s, once) | sweep (s) | points per minute | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['points']} | {r['failed']} | {r['prepare']:.0f} | {r['sweep']} "
              f"| {r['per_minute']:.2f} | {r['per_minute'] / base:.2f}x |")


if __name__ == "__main__":
    main()
