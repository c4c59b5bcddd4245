"""The calibrated FIFO model against every row of the real csynth FIFO table."""

from __future__ import annotations

import csv

import pytest

from conftest import REPO
from hls_backend.fifo_estimate import fifo_cost, stream_fifos

TABLE = REPO / "tests" / "data" / "csynth_fifo_rows.tsv"


def rows() -> list[dict]:
    with open(TABLE, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_bram18k_matches_every_calibration_row():
    table = rows()
    assert len(table) == 3580
    wrong = [r for r in table if fifo_cost(int(r["depth"]), int(r["bits"])).bram18k != int(r["bram18k"])]
    assert wrong == []


def test_ff_is_close_on_most_rows():
    table = rows()
    close = sum(abs(fifo_cost(int(r["depth"]), int(r["bits"])).ff - int(r["ff"])) <= 2 for r in table)
    assert close / len(table) > 0.95


def test_rtl_threshold_keeps_up_to_1024_bits_in_shift_registers():
    assert fifo_cost(64, 16, "csynth").implementation == "bram"
    assert fifo_cost(64, 16, "rtl").implementation == "shift-register"
    assert fifo_cost(65, 16, "rtl").bram18k == 1


def test_vivado_splits_streams_and_vitis_packs_them():
    vivado = stream_fifos(1024, 16, 32, tool="vivado")
    vitis = stream_fifos(1024, 16, 32, tool="vitis")
    assert len(vivado) == 32 and sum(f.bram18k for f in vivado) == 32
    assert len(vitis) == 1 and vitis[0].bram18k == 29  # ceil(512 bits / 18)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        fifo_cost(0, 8)


def test_rough_lut_follows_the_storage():
    # shift register: one SRL32 LUT per bit per 32 words, plus control
    assert fifo_cost(32, 8).lut < fifo_cost(64, 8).lut < fifo_cost(64, 16, "rtl").lut
    # BRAM: control only, whatever the width
    assert fifo_cost(1024, 8).lut == fifo_cost(1024, 72).lut < fifo_cost(64, 16, "rtl").lut
