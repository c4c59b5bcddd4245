"""QKeras vs its QONNX export on resnet_v1_eembc_quantized_tiny's architecture: N(0, 1) inputs vs inputs on the
parity check's grid, over seeded weights (models/make_qkeras_resnet_tiny.py; needs the `qkeras` extra).

    python bench/bench_qkeras_rounding.py [--models 8] [--inputs 3] [--skip]

Each cell: max abs difference of the logits over 16 inputs drawn with that input seed. A nonzero cell on N(0, 1)
inputs comes from the first conv, the one layer reading unquantized floats: TensorFlow and onnxruntime sum its 27
products in different orders, and a quantized_relu input within that float32 difference of a rounding boundary
rounds one step apart. On the grid the sums are exact and every cell is 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from onnx_fuse import qonnx_ops
from onnx_fuse.cli import quiet_libraries
from onnx_fuse.keras_loaders import native_stderr_silenced
from onnx_fuse.qkeras import qkeras_to_qonnx
from onnx_fuse.verify import keras_runner, random_feeds, run_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="weight seeds 0..N-1")
    parser.add_argument("--inputs", type=int, default=3, help="input seeds 0..N-1")
    parser.add_argument("--skip", action="store_true", help="the residual Add variant (the config's skip 1)")
    args = parser.parse_args()
    quiet_libraries()
    logging.getLogger("onnx_fuse").setLevel(logging.WARNING)
    with native_stderr_silenced():  # TensorFlow's import-time C++ log lines
        from make_qkeras_resnet_tiny import resnet_tiny

    seeds = range(args.inputs)
    print("max |QKeras - ONNX| of the logits, 16 inputs per cell")
    print(f"{'weights':>8} | " + " ".join(f"{f'N(0,1) s{s}':>10}" for s in seeds) + " | "
          + " ".join(f"{f'grid s{s}':>8}" for s in seeds))
    differing = {"normal": 0, "grid": 0}
    for weights in range(args.models):
        exported = qkeras_to_qonnx(resnet_tiny(weights, args.skip))
        graph, reference = qonnx_ops.prepare(exported.model), keras_runner(exported.reference)
        cells = {}
        for kind in differing:
            for seed in seeds:
                feeds = random_feeds(graph, 16, seed, on_grid=kind == "grid")
                err = float(np.abs(reference(feeds)[0] - run_onnx(graph, feeds)[0]).max())
                differing[kind] += err > 0
                cells[kind, seed] = err
        print(f"{weights:>8} | " + " ".join(f"{cells['normal', s]:>10.3g}" for s in seeds) + " | "
              + " ".join(f"{cells['grid', s]:>8.3g}" for s in seeds))
    total = args.models * args.inputs
    print(f"cells with a difference: N(0,1) {differing['normal']}/{total}, grid {differing['grid']}/{total}")


if __name__ == "__main__":
    main()
