"""The real csynth reports behind estimate_rules.FITTED: reading tests/data/csynth_instances.tsv, fitting the
coefficients on its calibration split, and estimating its designs for the accuracy table.

The fit uses only rows whose `split` is `calibration`; the held-out designs were chosen before any fitting and are
never passed to `fit`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls_backend import estimate_rules as rules
from hls_backend.estimate_rules import LayerSpec
from hls_backend.fifo_estimate import fifo_cost

RESOURCES = ("bram18k", "dsp", "ff", "lut")
SUMMARY_KINDS = ("total", "fifos")  # the report's Total line and its FIFO summary line
TIMING = ("lat_min", "lat_max", "ii_min", "ii_max")
# report key of the FIFO rows of the io_stream designs whose FIFOs were first transcribed for the FIFO model (other
# designs' FIFO rows are keyed by the design's own name)
FIFO_REPORTS = {
    "chiruichen_autoencoder": "ChiRuiChen_AutoEncoder_hls4mlmyproject_prj_solution1_syn_report_myproject",
    "seed_tiny2_merged": "seed-tiny2-manually-merged",
    "spallen_pulse_vitis": "SpAllen0726_HG-DREAM-Pulse-Detection-ProjectHLS_models_myproject_prj_solution1_syn_report_",
    "pominiq_cnn": "pominiq_DNNonSilicon_hls4ml_prj_myproject_prj_solution1_syn_report_myproject",
    "taitashaw_mlp_vitis": "taitashaw_hls4ml-fpga-classifier_my-hls-test_myproject_prj_solution1_syn_report_myproject",
}
# FIFO shapes: the FIFO model's own calibration table, and those of the designs outside it
FIFO_TABLES = ("csynth_fifo_rows.tsv", "csynth_design_fifos.tsv")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_fifo_rows(data: Path) -> list[dict]:
    return [row for name in FIFO_TABLES for row in read_rows(data / name)]


def design_fifos(design: str, fifo_rows: list[dict]) -> list[dict]:
    key = FIFO_REPORTS.get(design, design)
    return [f for f in fifo_rows if f["report"] == key]


def hls_tool(version: str) -> str:
    """"vitis" or "vivado" from a report's tool version: Vivado HLS ended with 2020.1, Vitis HLS began with 2020.2."""
    year, _, minor = version.removeprefix("vitis-").partition(".")
    return "vitis" if version.startswith("vitis") or (int(year), int(minor[:1] or 0)) >= (2020, 2) else "vivado"


def weights_read(design: str, rows: list[dict]) -> bool:
    """Every product of the design that could take a DSP (Latency strategy, data wider than 10 bits) has its weights
    counted, as in every `onnx-fuse estimate` run; elsewhere its DSP estimate is the fitted fallback share."""
    return all(r["dsp_weights"] for r in rows if r["design"] == design and r["kind"] in ("dense", "conv")
               and r["strategy"].lower() == "latency" and int(r["in_bits"] or 16) > rules.DSP_MIN_DATA_BITS)


def number(value: str, default: int | None = 0) -> int | None:
    return int(value) if value != "" else default


def spec_from_row(row: dict) -> LayerSpec:
    kind = row["kind"]
    n_in, n_out = number(row["n_in"]), number(row["n_out"])
    return LayerSpec(
        name=row["instance"], kind=kind, io_type=row["io_type"], strategy=row["strategy"].lower(),
        n_in=n_in, n_out=n_out, nonzero=number(row["nonzero"]), reuse=number(row["reuse"], 1),
        in_bits=number(row["in_bits"], 16), w_bits=number(row["w_bits"], 16), acc_bits=number(row["acc_bits"], 16),
        out_bits=number(row["out_bits"], 16), in_pixels=number(row["in_pixels"], 1),
        out_pixels=number(row["out_pixels"], 1), n_chan=number(row["n_chan"], 1), kernel=number(row["kernel"], 1),
        dsp_weights=number(row["dsp_weights"], None), elements=n_in if kind in ("relu", "softmax") else 0,
        part=row["part"], clock_ns=float(row["clock_ns"] or 5),
    )


def measured(row: dict) -> dict[str, int]:
    return {k: int(row[k]) for k in RESOURCES + TIMING}


def nnls(features: list[tuple[float, ...]], targets: list[float]) -> tuple[float, ...]:
    from scipy.optimize import nnls as solve

    coeffs, _ = solve(np.array(features, dtype=float), np.array(targets, dtype=float))
    return tuple(round(float(c), 4) for c in coeffs)


def fit(rows: list[dict], fifo_rows: list[dict]) -> tuple[dict, dict]:
    """(FITTED, FITTED_SCALARS) from calibration rows only."""
    cal = [r for r in rows if r["split"] == "calibration"]
    if not cal:
        raise ValueError("fit needs calibration rows")
    layers = [(spec_from_row(r), measured(r), r) for r in cal if r["kind"] not in SUMMARY_KINDS]
    layers = [(s, m, r) for s, m, r in layers if rules.layer_cost(s).covered]
    scalars = {}
    unknown = [(s, m) for s, m, _ in layers if s.kind in ("dense", "conv") and s.strategy == "latency"
               and s.dsp_weights is None and s.in_bits > rules.DSP_MIN_DATA_BITS]
    scalars["dsp_weight_fraction"] = round(sum(m["dsp"] for _, m in unknown) / sum(s.nonzero for s, _ in unknown), 4)
    stream_convs = [(s, m) for s, m, _ in layers if s.kind == "conv" and s.io_type == "io_stream"
                    and s.strategy == "resource"]
    # medians: a few designs (fully serial reuse, wide softmax tables) are far from the rest
    scalars["stream_conv_extra_cycles"] = round(
        float(np.median([m["lat_max"] / s.in_pixels - s.reuse for s, m in stream_convs])), 4)
    scalars["stream_conv_min_cycles"] = round(
        float(np.median([m["lat_min"] / s.in_pixels for s, m in stream_convs])), 4)
    softmax = [m["lat_max"] for s, m, _ in layers if s.kind == "softmax"]
    scalars["softmax_cycles"] = round(float(np.median(softmax)), 4)
    series7 = [m["lat_max"] * s.clock_ns for s, m, _ in layers if s.kind in ("dense", "conv")
               and s.strategy == "latency" and s.io_type == "io_parallel" and rules.is_series7(s.part)]
    scalars["series7_stage_ns"] = round(float(np.median(series7)), 4)
    tops = []
    for design in sorted({r["design"] for r in cal if r["io_type"] == "io_parallel"}):
        total = next(r for r in cal if r["design"] == design and r["kind"] == "total")
        inner = sum(int(r["lat_max"]) for r in cal if r["design"] == design and r["kind"] not in SUMMARY_KINDS)
        tops.append(int(total["lat_max"]) - inner)
    scalars["parallel_top_cycles"] = round(float(np.median(tops)), 4)
    fifo_lut = [(int(r["lut"]), len(design_fifos(r["design"], fifo_rows)))
                for r in cal if r["kind"] == "fifos"]
    scalars["fifo_lut_each"] = round(sum(lut for lut, _ in fifo_lut) / sum(n for _, n in fifo_lut), 4)


    groups: dict[tuple[str, str], tuple[list, list]] = {key: ([], []) for key in rules.FITTED}

    def add(key, feats, target):
        groups[key][0].append(feats)
        groups[key][1].append(target)

    for spec, m, row in layers:
        if spec.kind in ("dense", "conv"):
            if spec.strategy == "latency":
                dsp_products = min(m["dsp"], rules.multiplier_limit(spec))
                add(("mult_latency", "lut"), rules.features_mult_latency_lut(spec, dsp_products), m["lut"])
                if spec.io_type == "io_stream" and spec.kind == "conv":
                    add(("mult_latency_stream", "ff"), rules.features_mult_latency_stream_ff(spec), m["ff"])
                    if spec.reuse == 1:  # the adder tree's cycles; at reuse > 1 they overlap the reuse cycles
                        add(("stream_latency_conv", "cycles"), rules.features_stream_latency_conv_cycles(spec),
                            m["lat_max"] / spec.in_pixels - spec.reuse)
                else:  # the report's own pipeline depth of the layer
                    add(("mult_latency", "ff"), rules.features_mult_latency_ff(spec, m["lat_max"]), m["ff"])
            else:
                add(("mult_resource", "lut"), rules.features_mult_resource(spec), m["lut"])
                add(("mult_resource", "ff"), rules.features_mult_resource(spec), m["ff"])
        elif spec.kind == "relu":
            if spec.io_type == "io_parallel":
                add(("activation_parallel", "lut"), rules.features_activation_parallel(spec), m["lut"])
            else:
                add(("activation_stream", "lut"), rules.features_stream_channels(spec), m["lut"])
                add(("activation_stream", "ff"), rules.features_stream_channels(spec), m["ff"])
        elif spec.kind in ("pool", "zeropad", "resize"):
            add((f"{spec.kind}_stream", "lut"), rules.features_stream_channels(spec), m["lut"])
            add((f"{spec.kind}_stream", "ff"), rules.features_stream_channels(spec), m["ff"])
        elif spec.kind == "softmax":
            add(("softmax", "lut"), rules.features_softmax(spec), m["lut"])
            add(("softmax", "ff"), rules.features_softmax(spec), m["ff"])
    for design in sorted({r["design"] for r in cal if r["io_type"] == "io_parallel"}):
        inner = [r for r in cal if r["design"] == design and r["kind"] not in SUMMARY_KINDS]
        total = next(r for r in cal if r["design"] == design and r["kind"] == "total")
        add(("top_parallel", "ff"), rules.top_parallel_features([spec_from_row(r) for r in inner]),
            int(total["ff"]) - sum(int(r["ff"]) for r in inner))
    fitted = {key: nnls(*groups[key]) for key in rules.FITTED}
    return fitted, scalars


@dataclass
class DesignCheck:
    """One design's estimate against its report. A layer without a rule is left out of the estimate, as
    `onnx-fuse estimate` does, so the report is compared without it too: its reported BRAM/DSP/FF/LUT are taken off
    the report's Total, and the design's latency and interval are not compared (None)."""

    design: str
    split: str
    io_type: str
    estimate: dict[str, int]
    report: dict[str, int | None]
    not_covered: tuple[str, ...] = ()


def estimate_design(design: str, rows: list[dict], fifo_rows: list[dict]) -> DesignCheck:
    """The estimate of one reported design from its layer rows (and its report's FIFO shapes)."""
    inner = [r for r in rows if r["design"] == design and r["kind"] not in SUMMARY_KINDS]
    total_row = next(r for r in rows if r["design"] == design and r["kind"] == "total")
    costed = [(r, spec, rules.layer_cost(spec)) for r, spec in ((r, spec_from_row(r)) for r in inner)]
    specs = [spec for _, spec, cost in costed if cost.covered]
    costs = [cost for _, _, cost in costed if cost.covered]
    io_type = inner[0]["io_type"]
    fifo = {}
    if io_type == "io_stream":
        fifos = [fifo_cost(int(f["depth"]), int(f["bits"]), tool=hls_tool(f["tool_version"]))
                 for f in design_fifos(design, fifo_rows)]
        fifo = {"bram18k": sum(f.bram18k for f in fifos), "ff": sum(f.ff for f in fifos),
                "lut": round(len(fifos) * rules.FITTED_SCALARS["fifo_lut_each"])}
    total = rules.design_totals(specs, costs, io_type, fifo)
    est = {k: total[k] for k in RESOURCES}
    est.update(lat_min=total["latency_min"], lat_max=total["latency_max"], ii_min=total["interval_min"],
               ii_max=total["interval_max"])
    report: dict[str, int | None] = measured(total_row)
    uncovered = [r for r, _, cost in costed if not cost.covered]
    for r in uncovered:
        for k in RESOURCES:
            report[k] -= int(r[k])
    if uncovered:
        report.update(dict.fromkeys(TIMING))
    return DesignCheck(design, total_row["split"], io_type, est, report, tuple(r["instance"] for r in uncovered))
