"""Fusion pass time vs onnxruntime's own offline graph optimisation, on Conv->Relu chains of 10 to 10,000 nodes.

    python bench/bench_fuse_scaling.py [--sizes 10 100 1000 10000] [--repeat 3] [--cpu]

Prints one table: best-of-N seconds (wall, or CPU with --cpu) for onnx_fuse.fusion and for an ORT session build at
ORT_ENABLE_EXTENDED writing the optimised model (which fuses Conv+Relu into com.microsoft FusedConv), their ratio, and the time per
node, which stays flat when the pass scales linearly.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse.fusion import fuse
from onnx_fuse.pipeline import gc_paused


def chain(nodes: int, channels: int = 4, size: int = 8) -> onnx.ModelProto:
    """Conv(bias)->Relu pairs in a row, named like an export: `nodes` nodes in all. Each kernel is 0.9 x identity
    plus small noise and each bias 0.1, so activations stay near 1 however long the chain (random kernels overflow
    to inf after a few hundred layers, and parity on NaN fails)."""
    rng = np.random.default_rng(0)
    identity = np.zeros((channels, channels, 3, 3), np.float32)
    identity[range(channels), range(channels), 1, 1] = 0.9
    graph_nodes, inits, current = [], [], "x"
    for i in range(nodes // 2):
        w = numpy_helper.from_array((identity + 0.02 * rng.standard_normal(identity.shape)).astype(np.float32), f"w{i}")
        b = numpy_helper.from_array(np.full(channels, 0.1, np.float32), f"b{i}")
        inits += [w, b]
        graph_nodes.append(
            helper.make_node("Conv", [current, w.name, b.name], [f"c{i}"], name=f"Conv_{i}", kernel_shape=[3, 3], pads=[1] * 4)
        )
        graph_nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"Relu_{i}"))
        current = f"r{i}"
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        graph_nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, shape)], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def best_of(repeat: int, fn, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def ort_offline(model: onnx.ModelProto, out: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="CPU time of this process instead of wall time "
                        "(fairer on a shared machine; counts ORT's threads too)")
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    print(f"{'nodes':>7} {'pairs':>6} {'fuse s':>9} {'ORT opt s':>10} {'fuse/ORT':>9} {'fuse us/node':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            model = chain(n)
            fused, report = fuse(model)
            assert report.pairs == n // 2
            with gc_paused():  # as pipeline.run runs every stage
                t_fuse = best_of(args.repeat, lambda m=model: fuse(m), clock)
            t_ort = best_of(args.repeat, lambda m=model: ort_offline(m, Path(tmp) / "opt.onnx"), clock)
            print(f"{n:>7} {report.pairs:>6} {t_fuse:>9.4f} {t_ort:>10.4f} {t_fuse / t_ort:>9.2f} {1e6 * t_fuse / n:>13.1f}")


if __name__ == "__main__":
    main()
