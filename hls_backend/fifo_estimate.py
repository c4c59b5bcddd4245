"""FIFO resource estimate for hls4ml io_stream designs, calibrated on real csynth reports.

No Vivado/Vitis here, so cost comes from rules fitted on 3,580 FIFO rows of 13 real csynth reports
(tests/data/csynth_fifo_rows.tsv): the BRAM_18K rule reproduces every row exactly, the FF
rule is within 2 FF on most rows. LUT is NOT calibrated (csynth reports FIFO LUT only as one summary figure, which
the table does not hold): `lut` is a rough architectural figure — a shift-register FIFO stores each bit in SRL32
LUTs (one per 32 words), plus address/control logic; a BRAM FIFO needs only its control logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BRAM18K_DEPTH = 16384
# Vivado HLS 2019.2/2020.1 csynth reports a FIFO of <= 512 bits as shift registers; the RTL keeps up to
# 1024 bits there (`config_storage fifo -auto_srl_max_bits 1024`, the documented default).
SRL_MAX_BITS = {"csynth": 512, "rtl": 1024}
# Vitis HLS keeps a FIFO of at most this depth in shift registers whatever its width (`config_storage fifo
# -auto_srl_max_depth`, documented default 2): the 1-deep, 1024-bit packed streams of an hls4ml MLP take no BRAM.
VITIS_SRL_MAX_DEPTH = 2
# BRAM_18K aspect ratios: usable width per block at a given depth.
WIDTH_AT_DEPTH = ((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@dataclass(frozen=True)
class FifoCost:
    depth: int
    bits: int
    bram18k: int
    ff: int

    @property
    def lut(self) -> int:
        """Rough, not calibrated (see the module docstring)."""
        address = max(math.ceil(math.log2(self.depth + 1)), 1)
        if self.bram18k:
            return 2 * address + 8
        return self.bits * math.ceil(self.depth / 32) + address + 4

    @property
    def implementation(self) -> str:
        return "bram" if self.bram18k else "shift-register"


def bram_width(depth: int) -> int:
    return next(width for limit, width in WIDTH_AT_DEPTH if min(depth, BRAM18K_DEPTH) <= limit)


def fifo_cost(depth: int, bits: int, threshold: str = "csynth", tool: str = "vivado") -> FifoCost:
    """One FIFO of `depth` words of `bits` bits."""
    if depth < 1 or bits < 1:
        raise ValueError(f"FIFO needs depth and width >= 1, got depth={depth} bits={bits}")
    if depth * bits <= SRL_MAX_BITS[threshold] or (tool == "vitis" and depth <= VITIS_SRL_MAX_DEPTH):
        return FifoCost(depth, bits, 0, max(math.ceil(math.log2(depth)), 0) + 3)
    bram = math.ceil(depth / BRAM18K_DEPTH) * math.ceil(bits / bram_width(depth))
    return FifoCost(depth, bits, bram, bits + 3 * math.ceil(math.log2(depth + 1)) + 3)


def stream_fifos(depth: int, element_bits: int, elements: int, tool: str = "vivado", threshold: str = "csynth") -> list[FifoCost]:
    """The FIFOs of one hls::stream<nnet::array<T, N>>: Vivado HLS splits it per element, Vitis HLS packs it."""
    if tool == "vivado":
        return [fifo_cost(depth, element_bits, threshold)] * elements
    if tool == "vitis":
        return [fifo_cost(depth, element_bits * elements, threshold, tool)]
    raise ValueError(f"tool must be 'vivado' or 'vitis', got {tool!r}")
