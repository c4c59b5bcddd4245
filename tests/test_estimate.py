"""The whole-design estimate against real csynth reports (tests/data/csynth_instances.tsv), and on real hls4ml
conversions of the project's models (no compile)."""

from __future__ import annotations

import json

import pytest

from conftest import MODELS, REPO
from hls_backend import estimate_rules as rules
from hls_backend.estimate_calibration import estimate_design, fit, read_fifo_rows, read_rows, spec_from_row

DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def report_rows():
    return read_rows(DATA / "csynth_instances.tsv"), read_fifo_rows(DATA)


def designs(rows, split):
    return sorted({r["design"] for r in rows if r["split"] == split})


def test_split_holds_out_a_quarter_of_the_design_groups(report_rows):
    rows, _ = report_rows
    # hp_model1 and hp_model1_rf2 are one network at two reuse factors: one group
    groups = {r["design"].replace("_rf2", ""): r["split"] for r in rows}
    held = sorted(g for g, split in groups.items() if split == "heldout")
    assert held == ["hp_model2", "nrp_mlp_vitis", "pominiq_cnn", "seed_tiny2_merged", "taitashaw_mlp_vitis"]
    assert len(groups) == 10 and len(held) / len(groups) >= 0.25
    tools = {r["tool_version"] for r in rows}
    assert {"2019.2", "2019.2.1", "2020.1", "vitis-2022.2", "vitis-2023.1", "vitis-2025.2"} == tools


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


def test_held_out_designs_against_the_bram_dsp_latency_and_interval_targets(report_rows):
    """What was measured on the five held-out designs (docs/estimate.md says why each miss misses): every target
    holds on hp_model2 and seed_tiny2_merged, DSP also on the two Vitis MLPs (4 of 5 designs), the reuse-16 Latency
    CNN misses all four. Pinned, so a change of the rules that moves a held-out design shows up here."""
    rows, fifo_rows = report_rows
    met = {}
    for design in designs(rows, "heldout"):
        check = estimate_design(design, rows, fifo_rows)
        est, rep = check.estimate, check.report
        met[design] = (within(est["bram18k"], rep["bram18k"], 0.10, floor=2), within(est["dsp"], rep["dsp"], 0.15),
                       within(est["lat_max"], rep["lat_max"], 0.10), within(est["ii_max"], rep["ii_max"], 0.10))
    assert met == {"hp_model2": (True, True, True, True), "seed_tiny2_merged": (True, True, True, True),
                   "nrp_mlp_vitis": (False, True, False, True), "pominiq_cnn": (False, False, False, False),
                   "taitashaw_mlp_vitis": (False, True, False, False)}


def test_held_out_ff_and_lut_smape(report_rows):
    """Measured over the five held-out designs: FF sMAPE 53%, LUT 36% (target 25%: missed; docs/estimate.md)."""
    rows, fifo_rows = report_rows
    checks = [estimate_design(d, rows, fifo_rows) for d in designs(rows, "heldout")]
    for resource, measured in (("ff", 0.53), ("lut", 0.36)):
        mean = sum(smape(c.estimate[resource], c.report[resource]) for c in checks) / len(checks)
        assert abs(mean - measured) < 0.01, (resource, mean)


def test_dsp_rule_on_every_layer_whose_weights_are_known(report_rows):
    """DSP = min(weights with 3+ CSD digits, hls4ml's multiplier limit) for 16-bit Latency layers, on the 16 layers
    whose weights were transcribed (Vivado HLS 2019.2, Vitis HLS 2022.2 and 2025.2): 6 exact, the others over by
    0.5-3.6% (1564 counted, 1509 reported at most)."""
    rows, _ = report_rows
    known = [r for r in rows if r["dsp_weights"]]
    assert len(known) == 16 and {r["split"] for r in known} == {"calibration", "heldout"}
    assert {r["tool_version"] for r in known} == {"2019.2", "vitis-2022.2", "vitis-2025.2"}
    for row in known:
        cost = rules.layer_cost(spec_from_row(row))
        assert int(row["dsp"]) <= cost.dsp <= 1.037 * int(row["dsp"]), (row["design"], row["instance"], cost.dsp)
    exact = [r for r in known if rules.layer_cost(spec_from_row(r)).dsp == int(r["dsp"])]
    assert len(exact) == 6  # 114, 80 (RF 2: the multiplier limit 160/2), 200, 36, 122 (Vitis 2022.2), 129 (2025.2)


def test_calibration_designs_are_reproduced(report_rows):
    """In-sample: BRAM_18K within max(2, 10%) on every calibration design, FF and LUT sMAPE 7% and 6%."""
    rows, fifo_rows = report_rows
    checks = [estimate_design(d, rows, fifo_rows) for d in designs(rows, "calibration")]
    for check in checks:
        assert within(check.estimate["bram18k"], check.report["bram18k"], 0.10, floor=2), check.design
    for resource in ("ff", "lut"):
        assert sum(smape(c.estimate[resource], c.report[resource]) for c in checks) / len(checks) < 0.08


def test_a_report_row_without_a_rule_is_left_out_of_the_checked_total(report_rows):
    rows, fifo_rows = report_rows
    sigmoid = next(r for r in rows if r["kind"] == "hard_sigmoid")
    assert not rules.layer_cost(spec_from_row(sigmoid)).covered
    without = [r for r in rows if r is not sigmoid]
    design = sigmoid["design"]
    assert estimate_design(design, rows, fifo_rows).estimate == estimate_design(design, without, fifo_rows).estimate


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
