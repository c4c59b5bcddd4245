"""The whole CLI pipeline on Conv->Relu chains of 100 to 10,000 nodes: seconds per node by stage.

    python bench/bench_cli_scaling.py [--sizes 100 1000 10000] [--samples 16] [--repeat 2]

After a warm-up run, each size is written as an .onnx file and run through onnx_fuse.pipeline.run, as the CLI does (load, read,
normalise, fuse, verify in onnxruntime on `--samples` random inputs, write). Prints microseconds per node for each
stage (best of `--repeat` runs), as CPU time of this process (all its threads) and as wall time; a stage that
scales linearly stays flat along a row. CPU time is the figure to compare on a shared machine: wall time also counts waiting for a core.
The row "(ort session)" is not a stage: it times one onnxruntime session build on the unfused graph alone, so
onnxruntime's own growth can be told from the pipeline's.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import onnx

from bench_fuse_scaling import chain
from onnx_fuse.cli import quiet_libraries
from onnx_fuse.pipeline import Options, run
from onnx_fuse.verify import session


class StageClock(logging.Handler):
    """pipeline.run logs one line on the "onnx_fuse" logger as each stage starts: the CPU clock at each line gives
    the CPU time per stage of the real run (its `seconds` are wall time)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.marks: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "onnx_fuse":
            self.marks.append(time.process_time())


def measure(nodes: int, samples: int, tmp: Path) -> tuple[dict[str, float], dict[str, float]]:
    source, target = tmp / f"chain{nodes}.onnx", tmp / f"chain{nodes}_fused.onnx"
    onnx.save(chain(nodes), source)
    clock = StageClock()
    logger = logging.getLogger("onnx_fuse")
    logger.addHandler(clock)
    try:
        result = run(source, target, Options(samples=samples))
        clock.marks.append(time.process_time())
    finally:
        logger.removeHandler(clock)
    assert result.fusion.pairs == nodes // 2 and all(p.ok for p in result.parity)
    stages = list(result.seconds)
    cpu = {stage: end - start for stage, start, end in zip(stages, clock.marks, clock.marks[1:])}
    # Not a stage: onnxruntime's own session build on the unfused graph (verify builds three such sessions), to
    # tell onnxruntime's growth from ours.
    unfused = onnx.load(source)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    session(unfused)
    cpu["(ort session)"] = time.process_time() - start_cpu
    return cpu, {**result.seconds, "(ort session)": time.perf_counter() - start_wall}


def table(title: str, sizes: list[int], per_size: list[dict[str, float]]) -> None:
    print(title)
    print(f"{'stage':>14}" + "".join(f"{n:>10}" for n in sizes))
    for stage in per_size[0]:
        print(f"{stage:>14}" + "".join(f"{1e6 * s[stage] / n:>10.0f}" for n, s in zip(sizes, per_size)))
    totals = [sum(v for stage, v in s.items() if not stage.startswith("(")) for s in per_size]
    print(f"{'total':>14}" + "".join(f"{1e6 * t / n:>10.0f}" for n, t in zip(sizes, totals)))
    print(f"{'total s':>14}" + "".join(f"{t:>10.2f}" for t in totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    quiet_libraries()
    logging.getLogger("onnx_fuse").setLevel(logging.INFO)
    logging.getLogger("onnx_fuse").propagate = False
    cpus, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        measure(10, args.samples, Path(tmp))  # warm-up: lazy imports and first-call setup are paid once per process
        for nodes in args.sizes:
            runs = [measure(nodes, args.samples, Path(tmp)) for _ in range(args.repeat)]
            cpus.append({stage: min(cpu[stage] for cpu, _ in runs) for stage in runs[0][0]})
            walls.append({stage: min(wall[stage] for _, wall in runs) for stage in runs[0][1]})
    print(f"Conv->Relu chains through pipeline.run ({args.samples} parity inputs), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    table("CPU microseconds per node", args.sizes, cpus)
    table("wall microseconds per node", args.sizes, walls)


if __name__ == "__main__":
    main()
