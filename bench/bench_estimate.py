"""Accuracy of `onnx-fuse estimate` on the committed csynth reports, per resource, held-out designs first; then
rule4ml 0.2.0 (if installed: `pip install rule4ml==0.2.0`) on the same io_parallel designs.

    python bench/bench_estimate.py [--no-rule4ml] [--split heldout|calibration]

Targets (issue 20): BRAM_18K within max(2, 10%) and DSP within 15% on >= 80% of designs, FF and LUT sMAPE <= 25%,
latency and interval within 10% on >= 80%.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hls_backend.estimate_calibration import SUMMARY_KINDS, estimate_design, read_fifo_rows, read_rows, weights_read

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
KEYS = ("bram18k", "dsp", "ff", "lut", "lat_max", "ii_max")
LABEL = {"bram18k": "BRAM_18K", "dsp": "DSP", "ff": "FF", "lut": "LUT", "lat_max": "latency max",
         "ii_max": "interval max"}
TARGET = {"bram18k": "max(2, 10%) on 80%", "dsp": "15% on 80%", "ff": "sMAPE <= 25%", "lut": "sMAPE <= 25%"}
# rule4ml's boards, by the part family of a report
BOARDS = (("xc7z", "pynq-z2"), ("xczu", "zcu102"), ("xcu200", "alveo-u200"))
MLP_KINDS = {"dense", "relu", "softmax"}  # layers every estimate here covers


def mlp_of(design: str, rows: list[dict]) -> dict | None:
    """The Keras MLP a report describes (dense sizes, activations, reuse factor, precision, board), for rule4ml,
    which sees neither the weights nor the pruning; None unless the design is an io_parallel MLP."""
    inner = [r for r in rows if r["design"] == design and r["kind"] not in SUMMARY_KINDS]
    if inner[0]["io_type"] != "io_parallel" or {r["kind"] for r in inner} - MLP_KINDS:
        return None
    layers = []
    for r in inner:
        if r["kind"] == "dense":
            layers.append([int(r["n_out"]), None])
        elif layers:
            layers[-1][1] = r["kind"]
    first = next(r for r in inner if r["kind"] == "dense")
    width = int(first["in_bits"] or 16)
    part = first["part"].lower()
    return {"n_in": int(first["n_in"]), "layers": layers, "reuse": int(first["reuse"] or 1),
            "precision": f"ap_fixed<{width}, {6 if width >= 16 else max(1, 3 * width // 8)}>",
            "board": next((board for prefix, board in BOARDS if part.startswith(prefix)), "alveo-u250")}


def smape(a: float, b: float) -> float:
    return 0.0 if a == b == 0 else abs(a - b) / ((abs(a) + abs(b)) / 2)


def ok(key: str, est: float, rep: float) -> bool:
    if key == "bram18k":
        return abs(est - rep) <= max(2, 0.10 * rep)
    if key == "dsp":
        return abs(est - rep) <= 0.15 * rep
    return abs(est - rep) <= 0.10 * rep


def cell(key: str, est: float, rep: float | None) -> str:
    if rep is None:
        return "n/a"
    rel = f"{100 * (est - rep) / rep:+.0f}%" if rep else ("0" if est == rep else "n/a")
    return f"{est:.0f} / {rep} ({rel})"


def summary(checks: dict, key: str) -> list[str]:
    """One resource's result on the held-out, the calibration and all designs (those whose report has the value)."""
    parts = []
    for split in ("heldout", "calibration", None):
        group = [c for c in checks.values() if (split is None or c.split == split) and c.report[key] is not None]
        if key in ("ff", "lut"):
            parts.append(f"sMAPE {100 * sum(smape(c.estimate[key], c.report[key]) for c in group) / len(group):.0f}%")
        else:
            parts.append(f"{sum(ok(key, c.estimate[key], c.report[key]) for c in group)}/{len(group)} within")
    return parts


def rule4ml_predictions(mlps: dict[str, dict]) -> dict[str, dict[str, float]] | str:
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        from rule4ml.models.wrappers import MultiModelWrapper
    except ImportError as exc:
        return f"rule4ml not installed ({exc})"
    estimator = MultiModelWrapper()
    estimator.load_default_models()  # rule4ml's own packaged GNN weights (torch.load of its package files)
    out = {}
    for design, mlp in mlps.items():
        model = keras.Sequential([keras.Input((mlp["n_in"],))]
                                 + [keras.layers.Dense(n, activation=act) for n, act in mlp["layers"]])
        config = {"board": mlp["board"], "model": {"strategy": "Latency", "precision": mlp["precision"],
                                                    "reuse_factor": mlp["reuse"]}}
        frame = estimator.predict([model], hls_configs=[config], hls4ml_versions="0.8.1", vivado_versions="2019.2")
        row = frame.iloc[0]
        named = {str(k).lower(): row[k] for k in frame.columns}
        out[design] = {"bram18k": named.get("bram"), "dsp": named.get("dsp"), "ff": named.get("ff"),
                       "lut": named.get("lut"), "lat_max": named.get("cycles"), "ii_max": named.get("interval")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-rule4ml", action="store_true")
    parser.add_argument("--split", choices=("heldout", "calibration"), help="list only these designs (the summary "
                        "covers all)")
    args = parser.parse_args()
    rows, fifo_rows = read_rows(DATA / "csynth_instances.tsv"), read_fifo_rows(DATA)
    split = {r["design"]: r["split"] for r in rows}
    names = sorted(split, key=lambda d: (split[d] != "heldout", d))
    checks = {d: estimate_design(d, rows, fifo_rows) for d in names}
    print("| design | split | io | " + " | ".join(LABEL[k] + " est / report" for k in KEYS) + " |")
    print("|---|---|---|" + "---:|" * len(KEYS))
    for d, c in checks.items():
        if args.split and c.split != args.split:
            continue
        cells = " | ".join(cell(k, c.estimate[k], c.report[k]) for k in KEYS)
        print(f"| {d} | {c.split} | {c.io_type} | {cells} |")
    print()
    print("| resource | target | held-out | calibration | all |")
    print("|---|---|---|---|---|")
    for k in KEYS:
        print(f"| {LABEL[k]} | {TARGET.get(k, '10% on 80%')} | " + " | ".join(summary(checks, k)) + " |")
        if k == "dsp":
            read = {d: c for d, c in checks.items() if weights_read(d, rows)}
            print("| DSP, designs whose weights were read | 15% on 80% | " + " | ".join(summary(read, k)) + " |")
    if args.no_rule4ml:
        return
    print()
    mlps = {d: mlp for d in names if (mlp := mlp_of(d, rows)) is not None}
    parallel = list(mlps)
    predicted = rule4ml_predictions(mlps)
    if isinstance(predicted, str):
        print(f"rule4ml: {predicted}")
        return
    print("rule4ml 0.2.0 (GNN; hls4ml 0.8.1, Vivado 2019.2, its nearest board) on the same io_parallel MLPs:")
    print()
    print("| design | split | " + " | ".join(f"{LABEL[k]}: ours / rule4ml / report" for k in KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for d in parallel:
        c, p = checks[d], predicted[d]
        theirs = {k: "n/a" if p[k] is None else f"{float(p[k]):.0f}" for k in KEYS}
        cells = " | ".join(f"{c.estimate[k]} / {theirs[k]} / {c.report[k]}" for k in KEYS)
        print(f"| {d} | {c.split} | {cells} |")
    print()
    held = [d for d in parallel if checks[d].split == "heldout"]
    print(f"| resource | ours sMAPE, held out ({len(held)}) | rule4ml sMAPE, held out | ours sMAPE, all "
          f"({len(parallel)}) | rule4ml sMAPE, all |")
    print("|---|---:|---:|---:|---:|")
    for k in KEYS:
        cells = []
        for group in (held, parallel):
            pairs = [(checks[d].estimate[k], predicted[d][k], checks[d].report[k]) for d in group
                     if checks[d].report[k] is not None]
            theirs = [smape(float(p), r) for _, p, r in pairs if p is not None]
            cells += [f"{100 * sum(smape(e, r) for e, _, r in pairs) / len(pairs):.0f}%",
                      f"{100 * sum(theirs) / len(theirs):.0f}%" if theirs else "n/a"]
        print(f"| {LABEL[k]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
