"""The whole-design estimate against real csynth reports (tests/data/csynth_instances.tsv), and on real hls4ml
conversions of the project's models (no compile)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import MODELS, REPO
from hls_backend import estimate_rules as rules
from hls_backend.estimate_calibration import (estimate_design, fit, hls_tool, read_fifo_rows, read_rows, spec_from_row,
                                             weights_read)
from hls_backend.estimate_rules import LayerSpec

DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def report_rows():
    return read_rows(DATA / "csynth_instances.tsv"), read_fifo_rows(DATA)


def designs(rows, split):
    return sorted({r["design"] for r in rows if r["split"] == split})


# The fourth set's groups (designs of one network); every other fourth-set design is its own group.
FOURTH_SET_GROUPS = {
    "uwacme_rheed_gaussian_cnn_v7": "uwacme_rheed_gaussian_cnn",
    **{f"uwacme_neutdet_conv1d_rf{rf}": "uwacme_neutdet_conv1d" for rf in (12, 16, 48)},
    **{f"lolbraa_mnist_fixedhp_rf{rf}_vu": "lolbraa_mnist_fixedhp" for rf in (1, 100)},
    **{f"lolbraa_mnist_adaptivehp_rf{rf}_vu": "lolbraa_mnist_adaptivehp" for rf in (1, 16)},
    **{f"lolbraa_jet_hgq2_rf{rf}_vitis{year}": "lolbraa_jet_hgq2" for rf in (1, 4) for year in (2023, 2025)},
    "lolbraa_jet_hgq2_ebops1001_stream_vu": "lolbraa_jet_hgq2_ebops1001",
    "lolbraa_jet_hgq2_ebops1001_parallel_vitis": "lolbraa_jet_hgq2_ebops1001",
    "lolbraa_jet_hgq2_adaptivehp_stream_vu": "lolbraa_jet_hgq2_ebops303",
    "lolbraa_jet_hgq2_ebops303_parallel_vitis": "lolbraa_jet_hgq2_ebops303",
    "lolbraa_jet_baseline_stream_vu": "lolbraa_jet_baseline",
    "lolbraa_jet_baseline_nosoftmax_stream_vu": "lolbraa_jet_baseline",
    **{f"lrozzy_hgq_mlp_{i}_vitis": "lrozzy_hgq_mlp" for i in range(1, 6)},
    "gabriele_mnist_qcnn_resource": "gabriele_mnist_qcnn", "gabriele_mnist_qcnn_alveo": "gabriele_mnist_qcnn",
    **{f"tanvir_jet_mlp_{v}": "tanvir_jet_mlp" for v in ("baseline", "pruned", "qpruned")},
    "kdiep_binary_mlp_vitis": "kdiep_mlp", "kdiep_mlp16_vitis": "kdiep_mlp",
    "seanlipps_conv1d_vitis": "seanlipps_conv1d", "seanlipps_conv1d_parallel_vitis": "seanlipps_conv1d",
    "pominiq_dummy_rf16_pruned75": "pominiq_dummy_mlp", "pominiq_dummy_rf1": "pominiq_dummy_mlp",
    "feynmanlogic_mlp1_resource_vitis": "feynmanlogic_mlp1", "feynmanlogic_mlp1_parallel_vitis": "feynmanlogic_mlp1",
}
EARLIER_SETS = {"hp_model1", "hp_model1_rf2", "hp_model2", "hp_model3", "chiruichen_autoencoder", "seed_tiny2_merged",
                "spallen_pulse_vitis", "pominiq_cnn", "astitwlathe_mlp", "nrp_mlp_vitis", "taitashaw_mlp_vitis"}


def test_the_split_follows_its_stated_rule_and_holds_out_a_quarter_of_the_groups(report_rows):
    """The fourth set's split, recomputed from the rule in csynth_instances.SOURCES.md: groups in strata by tool
    family and io type, ordered by SHA-256 of the group name, every other one held out; the earlier sets are all
    calibration (their held-out designs were read while changing the rules)."""
    rows, _ = report_rows
    split = {r["design"]: r["split"] for r in rows}
    assert {split[d] for d in EARLIER_SETS} == {"calibration"}
    first: dict[str, dict] = {}
    for r in rows:
        if r["design"] not in EARLIER_SETS:
            first.setdefault(FOURTH_SET_GROUPS.get(r["design"], r["design"]), r)
    strata: dict[tuple[str, str], list[str]] = {}
    for group, r in first.items():
        strata.setdefault((hls_tool(r["tool_version"]), r["io_type"]), []).append(group)
    held = {g for groups in strata.values()
            for g in sorted(groups, key=lambda g: hashlib.sha256(g.encode()).hexdigest())[::2]}
    for design, s in split.items():
        if design not in EARLIER_SETS:
            assert s == ("heldout" if FOURTH_SET_GROUPS.get(design, design) in held else "calibration"), design
    groups = len(first) + 10  # the earlier sets: 10 groups (hp_model1 and its RF-2 run are one)
    assert len(held) == 20 and groups == 48 and len(held) / groups >= 0.25
    assert sum(1 for s in split.values() if s == "heldout") == 29 and len(split) == 71
    assert {hls_tool(r["tool_version"]) for r in rows if split[r["design"]] == "heldout"} == {"vivado", "vitis"}


def test_fit_on_the_calibration_split_reproduces_the_committed_coefficients(report_rows):
    rows, fifo_rows = report_rows
    fitted, scalars = fit(rows, fifo_rows)
    assert fitted == rules.FITTED
    assert scalars == rules.FITTED_SCALARS
    # and it never looks at the held-out designs: changing them changes nothing
    poisoned = [dict(r, lut="1", ff="1", dsp="1", lat_max="1") if r["split"] == "heldout" else r for r in rows]
    assert fit(poisoned, fifo_rows) == (fitted, scalars)


def within(estimate: int, report: int, rel: float, floor: int = 0) -> bool:
    return abs(estimate - report) <= max(floor, rel * report)


def smape(estimate: int, report: int) -> float:
    return 0.0 if estimate == report == 0 else abs(estimate - report) / ((abs(estimate) + abs(report)) / 2)


def test_held_out_designs_against_the_targets(report_rows):
    """What the one run on the 29 held-out designs measured (docs/estimate.md says why each target is missed):
    BRAM_18K within max(2, 10%) on 22, DSP within 15% on 20 of 29 and on 20 of the 24 whose weights were read,
    latency within 10% on 4 and interval on 8 of the 22 without layers outside the rules; FF sMAPE 93%, LUT 40%.
    Pinned, so a change of the rules that moves a held-out design shows up here."""
    rows, fifo_rows = report_rows
    checks = [estimate_design(d, rows, fifo_rows) for d in designs(rows, "heldout")]
    timed = [c for c in checks if c.report["lat_max"] is not None]
    assert len(checks) == 29 and len(timed) == 22
    assert sum(within(c.estimate["bram18k"], c.report["bram18k"], 0.10, floor=2) for c in checks) == 22
    assert sum(within(c.estimate["dsp"], c.report["dsp"], 0.15) for c in checks) == 20
    read = [c for c in checks if weights_read(c.design, rows)]
    assert (sum(within(c.estimate["dsp"], c.report["dsp"], 0.15) for c in read), len(read)) == (20, 24)
    assert sum(within(c.estimate["lat_max"], c.report["lat_max"], 0.10) for c in timed) == 4
    assert sum(within(c.estimate["ii_max"], c.report["ii_max"], 0.10) for c in timed) == 8
    for resource, measured in (("ff", 0.93), ("lut", 0.40)):
        mean = sum(smape(c.estimate[resource], c.report[resource]) for c in checks) / len(checks)
        assert abs(mean - measured) < 0.01, (resource, mean)


def test_dsp_rule_on_every_layer_whose_weights_are_known(report_rows):
    """DSP = min(weights with 3+ CSD digits, hls4ml's multiplier limit) x slices per product (data wider than the
    DSP48E1's 25-bit or the DSP48E2's 27-bit port: two) for Latency layers with data wider than 10 bits, on the 65
    layers whose weights were transcribed (Vivado HLS 2019.2 to Vitis HLS 2025.2): 35 exact, all but 3 within 15%.
    The 3: 6-bit weights the tool multiplies partly in LUTs (75 counted, 38 reported), an io_parallel conv1d whose
    pixels share multipliers (49,024 counted, 383 reported), 4 counted for 3."""
    rows, _ = report_rows
    known = [r for r in rows if r["dsp_weights"]]
    assert len(known) == 65
    outside = []
    for row in known:
        cost = rules.layer_cost(spec_from_row(row))
        if not within(cost.dsp, int(row["dsp"]), 0.15):
            outside.append(row["design"])
    exact = [r for r in known if rules.layer_cost(spec_from_row(r)).dsp == int(r["dsp"])]
    assert len(exact) == 35 and len(outside) == 3


def test_calibration_designs_are_reproduced(report_rows):
    """In-sample, 42 designs: BRAM_18K within max(2, 10%) on 38, FF sMAPE 49%, LUT 21%."""
    rows, fifo_rows = report_rows
    checks = [estimate_design(d, rows, fifo_rows) for d in designs(rows, "calibration")]
    assert len(checks) == 42
    assert sum(within(c.estimate["bram18k"], c.report["bram18k"], 0.10, floor=2) for c in checks) == 38
    for resource, measured in (("ff", 0.49), ("lut", 0.21)):
        mean = sum(smape(c.estimate[resource], c.report[resource]) for c in checks) / len(checks)
        assert abs(mean - measured) < 0.01, (resource, mean)


def test_a_report_row_without_a_rule_is_left_out_of_the_checked_total(report_rows):
    rows, fifo_rows = report_rows
    sigmoid = next(r for r in rows if r["kind"] == "hard_sigmoid")
    assert not rules.layer_cost(spec_from_row(sigmoid)).covered
    without = [r for r in rows if r is not sigmoid]
    design = sigmoid["design"]
    check = estimate_design(design, rows, fifo_rows)
    assert check.estimate == estimate_design(design, without, fifo_rows).estimate
    # and the report is compared without it: its resources off the Total, the design's timing not compared
    total = next(r for r in rows if r["design"] == design and r["kind"] == "total")
    assert check.report["lut"] == int(total["lut"]) - int(sigmoid["lut"]) and check.report["lat_max"] is None
    assert check.not_covered == (sigmoid["instance"],)


def test_csd_digits_and_storage_rules():
    assert [rules.csd_digits(n) for n in (0, 1, 2, 3, 7, 11, 21, -21, 0b10101010)] == [0, 1, 1, 2, 2, 3, 3, 3, 4]
    assert rules.rom_bram18k(96, 8) == 0  # 768 bits: LUTs
    assert rules.rom_bram18k(2048, 8) == 1  # 2048 x 9 mode
    assert rules.rom_bram18k(16384, 8) == 8  # 16K x 1 mode, one block per bit
    assert rules.rom_bram18k(72, 4 * 32) == 4  # 512 x 36 mode (the autoencoder's RF-72 convs: 4 reported)
    assert rules.dsp_per_product(8, 8) == 0 and rules.dsp_per_product(16, 16) == 1
    assert rules.dsp_per_product(32, 32) == 4


def test_a_layer_without_a_rule_is_reported_not_zero():
    cost = rules.layer_cost(rules.LayerSpec("x", "gru", "io_parallel", "latency"))
    assert not cost.covered and cost.lut is None and cost.bram18k is None and "not covered" in cost.note
    unrolled = rules.layer_cost(rules.LayerSpec("d", "dense", "io_parallel", "resource_unrolled", n_in=4, n_out=4))
    assert not unrolled.covered


@pytest.fixture(scope="module")
def digits_fused(tmp_path_factory):
    import onnx

    from onnx_fuse.cli import main

    tmp = tmp_path_factory.mktemp("estimate")
    fused_file = tmp / "digits.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(fused_file), "--no-verify", "-q"]) == 0
    return tmp, onnx.load(fused_file)


@pytest.fixture(scope="module")
def digits_graphs(digits_fused):
    from hls_backend import convert
    from hls_backend.hls_stage import HlsOptions, hls_config

    tmp, model = digits_fused
    graphs = {}
    for io_type in ("io_stream", "io_parallel"):
        for strategy in ("Latency", "Resource"):
            config = hls_config(model, HlsOptions(tmp, io_type=io_type, strategy=strategy))
            for fuse in (False, True):
                graphs[io_type, strategy, fuse] = convert(
                    model, output_dir=tmp / "prj", io_type=io_type, hls_config=config, fuse=fuse)
    return graphs


@pytest.mark.parametrize("io_type", ["io_stream", "io_parallel"])
@pytest.mark.parametrize("strategy", ["Latency", "Resource"])
def test_fused_design_drops_the_relu_layers_and_their_fifos(digits_graphs, io_type, strategy):
    from hls_backend.estimate import estimate_graph
    from hls_backend.resource_report import design_report

    unfused, fused = (estimate_graph(digits_graphs[io_type, strategy, f]) for f in (False, True))
    relus = [e.name for e in unfused.layers if e.layer_class == "Activation"]
    assert len(relus) == 2 and not any(e.name in relus for e in fused.layers)
    written_back = [e for e in fused.layers if e.spec is not None and e.spec.fused_activation == "Relu"]
    assert len(written_back) == 2
    convs = {e.name: e for e in unfused.layers if e.layer_class == "Conv2D"}
    for e in written_back:  # same multipliers and weight storage; the ReLU's logic rides on the conv
        assert (e.cost.dsp, e.cost.bram18k) == (convs[e.name].cost.dsp, convs[e.name].cost.bram18k)
    if io_type == "io_stream":
        fifo_saving = (design_report(digits_graphs[io_type, strategy, False]).bram18k
                       - design_report(digits_graphs[io_type, strategy, True]).bram18k)
        assert unfused.fifo["bram18k"] - fused.fifo["bram18k"] == fifo_saving > 0
        assert fused.total["bram18k"] == unfused.total["bram18k"] - fifo_saving
        assert fused.total["ff"] < unfused.total["ff"] and fused.total["lut"] < unfused.total["lut"]
    else:  # io_parallel pooling has no rule: named, left out of the totals, never a silent 0
        assert unfused.not_covered == fused.not_covered != []
        assert all("MaxPool_0" in n for n in unfused.not_covered)


def test_layer_table_shows_both_designs_and_the_difference(digits_graphs):
    from hls_backend.estimate import estimate_graph, layer_table

    unfused, fused = (estimate_graph(digits_graphs["io_stream", "Latency", f]) for f in (False, True))
    table = layer_table(unfused, fused)
    unfused_part, fused_part = table.split("fused design (io_stream):")[1:3]
    assert "| Relu_0 |" in unfused_part and "| Relu_0 |" not in fused_part
    assert fused_part.count("+ Relu write-back") == 2
    saving = fused.total["bram18k"] - unfused.total["bram18k"]
    assert f"| BRAM_18K | {unfused.total['bram18k']} | {fused.total['bram18k']} | {saving:+d} |" in table


def test_latency_follows_the_reuse_factor(digits_graphs):
    from hls_backend.estimate import estimate_graph

    design = estimate_graph(digits_graphs["io_stream", "Resource", True])
    conv = next(e for e in design.layers if e.name == "Conv2D_Conv_1")
    # Resource stream conv: input pixels x (reuse + fitted extra cycles)
    extra = round(rules.FITTED_SCALARS["stream_conv_extra_cycles"])
    assert conv.cost.lat_max == conv.spec.in_pixels * (conv.spec.reuse + extra)
    assert design.total["interval_max"] == max(e.cost.ii_max for e in design.layers if e.cost.covered) + 1


def test_cli_estimate_json(tmp_path, capsys):
    from onnx_fuse.cli import main

    code = main(["estimate", str(MODELS / "digits_mlp.h5"), "--io-type", "io_parallel", "--part", "xcu250",
                 "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for name in ("unfused", "fused"):
        assert set(out[name]["total"]) >= {"bram18k", "dsp", "ff", "lut", "latency_max", "interval_max"}
        assert out[name]["layers"]
    assert out["part"]["capacity"]["dsp"] == 12288 and out["part"]["fits"]["fused"]["bram18k"] is True
    assert out["pairs_fused"] >= 1
    assert len(out["fused"]["layers"]) == len(out["unfused"]["layers"]) - out["pairs_fused"]


def test_report_table_on_the_terminal_heads_the_whole_design_totals(digits_fused, tmp_path):
    """--report prints the FIFO table's totals and then the whole design's: each "| total |" table has its
    heading (conversion only, the way --report with --hls-out builds it)."""
    from hls_backend.hls_stage import HlsOptions, hls_config, write_report

    _, model = digits_fused
    options = HlsOptions(tmp_path, report=True)
    common = dict(backend=options.backend, io_type=options.io_type, hls_config=hls_config(model, options))
    report = write_report(model, options, common, {True: tmp_path / "f", False: tmp_path / "u"}, tmp_path)
    table = report["table"]
    fifo_part, whole_part = table.split("| total | unfused | fused | difference |")[1:]
    assert "Whole design, all layers and FIFOs" in fifo_part.strip().splitlines()[-1]
    assert "| FIFO BRAM_18K |" in fifo_part and "| latency max (cycles) |" in whole_part


def test_fit_verdict_is_unknown_when_layers_have_no_rule():
    from hls_backend.estimate import fits, fits_lines

    total = {"bram18k": 10, "dsp": 300, "ff": 1, "lut": 1}
    assert fits(10, 280, 0) is True and fits(300, 220, 2) is False and fits(10, 280, 2) is None
    lines = fits_lines(total, "xc7z020", uncovered=2)
    assert lines[0].endswith("fit unknown: 2 layer(s) without a rule are not counted")
    assert lines[1].endswith("does NOT fit")  # a lower bound already over capacity


def test_cli_estimate_names_every_layer_of_an_uncovered_strategy(capsys):
    """resource_unrolled (hls4ml keeps it at reuse factor > 1) has no rule: every Dense says so, the totals
    leave them out and say so, and the fit verdicts are unknown rather than "fits"."""
    from onnx_fuse.cli import main

    code = main(["estimate", str(MODELS / "digits_mlp.h5"), "--io-type", "io_parallel", "--strategy",
                 "resource_unrolled", "--reuse-factor", "4", "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for name in ("unfused", "fused"):
        dense = [layer for layer in out[name]["layers"] if layer["class"] == "Dense"]
        assert len(dense) == 3
        for layer in dense:
            assert layer["covered"] is False and layer["lut"] is None and layer["dsp"] is None
            assert "resource_unrolled" in layer["note"]
        assert len(out[name]["total"]["not_covered"]) == 3
        assert set(out["part"]["fits"][name].values()) == {None}


def test_cli_estimate_bad_input_is_one_line(tmp_path, capsys):
    from onnx_fuse.cli import main

    assert main(["estimate", str(tmp_path / "missing.onnx"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onnx-fuse: error:")
    assert main(["estimate", str(MODELS / "digits_mlp.h5"), "--reuse-factor", "0", "-q"]) == 2


@pytest.mark.slow
@pytest.mark.hls
def test_report_gives_the_whole_design_estimate_for_io_parallel(tmp_path, capsys):
    """--report with --hls-out: the same whole-design table, for an io_parallel design (no FIFO chart)."""
    from onnx_fuse.cli import main

    out = tmp_path / "h"
    code = main([str(MODELS / "digits_mlp.h5"), str(tmp_path / "m.onnx"), "--hls-out", str(out), "--report",
                 "--io-type", "io_parallel", "--samples", "4", "--json", "-q"])
    assert code == 0
    hls = json.loads(capsys.readouterr().out)["hls"]
    assert hls["bit_exact"] is True
    estimate = hls["report"]["estimate"]
    assert len(estimate["fused"]["layers"]) < len(estimate["unfused"]["layers"])
    text = (out / "report.md").read_text()
    assert "Whole design" in text and "| BRAM_18K |" in text and "| latency max (cycles) |" in text
    assert not (out / "report.png").exists()


def test_dataflow_latency_adds_up_one_item_processes_and_overlaps_pixel_streams():
    """An io_stream MLP's processes each handle one word: their latencies add, plus a handshake cycle each; a chain
    of convolutions over many pixels takes about its slowest process."""
    mlp = [LayerSpec("d", "dense", "io_stream", "latency"), LayerSpec("r", "relu", "io_stream", "latency")]
    assert rules.dataflow_latency(mlp, [2, 1]) == 2 + 1 + 2 * rules.DATAFLOW_HANDSHAKE_CYCLES
    convs = [LayerSpec(n, "conv", "io_stream", "latency", in_pixels=1024) for n in ("a", "b")]
    slow = rules.dataflow_latency(convs, [1024 * 3, 1024 * 5])
    assert 1024 * 5 <= slow <= 1024 * 5 + 10


def test_vitis_keeps_two_deep_fifos_in_shift_registers_whatever_their_width():
    from hls_backend.fifo_estimate import fifo_cost

    assert fifo_cost(1, 1024, tool="vitis").bram18k == 0 and fifo_cost(1, 1024).bram18k > 0  # Vivado HLS: BRAM
    assert fifo_cost(3, 1024, tool="vitis").bram18k > 0
