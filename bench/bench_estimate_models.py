"""Fused vs unfused whole-design estimate of the project's models (the totals table of docs/estimate.md).

    python bench/bench_estimate_models.py [--io-type io_stream] [--strategy Latency]

Every model with the CLI's defaults (Vivado, ap_fixed<16,6>, reuse factor 1; QKeras/QONNX quantizers set their own
types), plus tiny2 with the 2021 project's own config (models/tiny2_hls4ml.yml, Resource, reuse factor 16384).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_fuse.cli import main as cli_main

MODELS = Path(__file__).resolve().parent.parent / "models"
RUNS = [
    ("tiny2 (QKeras, no config)", "tiny2_qkeras.h5", []),
    ("tiny2 (2021 config: Resource, RF 16384)", "tiny2_float.h5",
     ["--config", str(MODELS / "tiny2_hls4ml.yml"), "--strategy", "Resource", "--reuse-factor", "16384",
      "--clock-period", "10"]),
    ("digits_cnn", "digits_cnn.h5", []),
    ("digits_mlp", "digits_mlp.h5", []),
    ("digits_leaky", "digits_leaky.h5", []),
    ("digits_conv1d", "digits_conv1d.keras", []),
    ("digits_mobilenet", "digits_mobilenet.keras", []),
    ("digits_qkeras", "digits_qkeras.h5", []),
    ("digits_qcnn_po2 (QONNX)", "digits_qcnn_po2.onnx", []),
    ("MLPerf Tiny ResNet-8", "mlperf_resnet8.keras", []),
]


def main() -> None:
    import contextlib
    import io
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--io-type", default="io_stream", choices=["io_stream", "io_parallel"])
    parser.add_argument("--strategy", default="Latency", choices=["Latency", "Resource"])
    args = parser.parse_args()
    print(f"| model ({args.io_type}) | pairs | BRAM_18K unfused / fused | DSP | FF | LUT | latency max (cycles) | "
          "interval max | layers without a rule |")
    print("|---|---:|---|---|---|---|---|---|---|")
    for title, name, extra in RUNS:
        argv = ["estimate", str(MODELS / name), "--io-type", args.io_type, "--json", "-q"]
        if "--strategy" not in extra:
            argv += ["--strategy", args.strategy]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli_main(argv + extra)
        if code != 0:
            print(f"| {title} | exit {code} | | | | | | | |")
            continue
        result = json.loads(out.getvalue())
        u, f = result["unfused"]["total"], result["fused"]["total"]
        cells = [f"{u[k]} / {f[k]}" for k in ("bram18k", "dsp", "ff", "lut", "latency_max", "interval_max")]
        missing = sorted({n.split(" ")[0] for n in u["not_covered"]})
        print(f"| {title} | {result['pairs_fused']} | " + " | ".join(cells) + f" | {', '.join(missing) or '-'} |",
              flush=True)


if __name__ == "__main__":
    main()
