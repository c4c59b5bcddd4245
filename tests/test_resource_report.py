"""FIFO/process report on real hls4ml io_stream conversions (no compile needed): fused = unfused minus the pairs."""

from __future__ import annotations

import onnx
import pytest

from conftest import MODELS
from hls_backend import convert
from hls_backend.resource_report import comparison_table, design_report
from onnx_fuse.cli import main


@pytest.fixture(scope="module")
def digits_graphs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    fused_file = tmp / "digits.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(fused_file), "--no-verify", "-q"]) == 0
    return {
        fuse: convert(fused_file, output_dir=tmp / f"prj_{fuse}", backend="Vivado", io_type="io_stream", fuse=fuse)
        for fuse in (False, True)
    }


@pytest.fixture(scope="module")
def tiny2_graphs(tmp_path_factory):
    """tiny2 with the original project's precisions (models/tiny2_hls4ml.yml), as docs/tiny2-float.md shows."""
    from hls_backend.hls_stage import HlsOptions, hls_config

    tmp = tmp_path_factory.mktemp("tiny2")
    fused_file = tmp / "tiny2.onnx"
    assert main([str(MODELS / "tiny2_float.h5"), str(fused_file), "--no-verify", "-q"]) == 0
    fused_model = onnx.load(fused_file)
    options = HlsOptions(tmp, strategy="Resource", reuse_factor=16384, config=MODELS / "tiny2_hls4ml.yml")
    config = hls_config(fused_model, options)
    return {
        fuse: convert(fused_model, output_dir=tmp / f"prj_{fuse}", io_type="io_stream",
                                      hls_config=config, fuse=fuse)
        for fuse in (False, True)
    }


@pytest.mark.slow  # converts tiny2 twice (19 s); the FIFO rules are checked on digits by default
def test_tiny2_variants_table_matches_the_docs(tiny2_graphs):
    from hls_backend.resource_report import variants_table

    table = variants_table(tiny2_graphs[False], tiny2_graphs[True])
    page = (MODELS.parent / "docs" / "tiny2-float.md").read_text()
    for line in table.splitlines()[2:]:
        assert line in page


@pytest.mark.slow  # the same two tiny2 conversions (19 s); the fused = unfused minus the pairs rule runs on digits
def test_tiny2_readme_figures(tiny2_graphs):
    unfused, fused = (design_report(tiny2_graphs[f]) for f in (False, True))
    assert (len(unfused.processes), len(fused.processes)) == (15, 10)
    assert (unfused.bram18k, fused.bram18k) == (268, 136)
    convs_feeding_relus = [r for r in unfused.streams if r.layer.startswith("Conv2D_Conv_")]
    assert len(convs_feeding_relus) == 5
    assert fused.bram18k == unfused.bram18k - sum(r.bram18k for r in convs_feeding_relus)


@pytest.mark.parametrize("tool", ["vivado", "vitis"])
def test_fused_design_drops_exactly_the_conv_to_relu_fifos_and_relu_processes(digits_graphs, tool):
    unfused, fused = (design_report(digits_graphs[f], tool) for f in (False, True))
    pairs = 2
    relus = [r for r in unfused.streams if r.layer_class == "Activation"]
    assert len(relus) == pairs
    convs_feeding_relus = [r for r in unfused.streams if r.layer in {relu.source for relu in relus}]
    assert len(unfused.processes) - len(fused.processes) == pairs
    assert len(unfused.streams) - len(fused.streams) == pairs
    assert fused.bram18k == unfused.bram18k - sum(r.bram18k for r in convs_feeding_relus)
    assert fused.fifo_count == unfused.fifo_count - sum(len(r.fifos) for r in convs_feeding_relus)
    # each fused conv streams out exactly what its ReLU streamed before (the ReLU's type and depth)
    fused_rows = {r.layer: r for r in fused.streams}
    for relu in relus:
        out = fused_rows[relu.source]
        assert (out.depth, out.element_bits, out.elements) == (relu.depth, relu.element_bits, relu.elements)
    assert fused.bram18k < unfused.bram18k


def test_comparison_table_names_the_fused_pairs(digits_graphs):
    unfused, fused = (design_report(digits_graphs[f]) for f in (False, True))
    table = comparison_table(unfused, fused)
    assert table.count("removed (fused with Relu_") == 2
    assert f"| dataflow processes | {len(unfused.processes)} | {len(fused.processes)} | -2 |" in table
    assert f"| FIFO BRAM_18K | {unfused.bram18k} | {fused.bram18k} | {fused.bram18k - unfused.bram18k:+d} |" in table


def test_io_parallel_has_no_fifo_report(tmp_path):
    fused_file = tmp_path / "d.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(fused_file), "--no-verify", "-q"]) == 0
    model = convert(fused_file, output_dir=tmp_path / "prj", io_type="io_parallel")
    with pytest.raises(ValueError, match="io_stream"):
        design_report(model)
