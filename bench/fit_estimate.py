"""Fit the estimate's coefficients on the calibration split of the committed csynth reports and print them in the
form hls_backend/estimate_rules.py holds them (FITTED, FITTED_SCALARS).

    python bench/fit_estimate.py

Only rows whose `split` is `calibration` are used (tests/data/csynth_instances.tsv); tests/test_estimate.py checks
that this fit reproduces the committed coefficients.
"""

from __future__ import annotations

import pprint
from pathlib import Path

from hls_backend.estimate_calibration import fit, read_fifo_rows, read_rows

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def main() -> None:
    fitted, scalars = fit(read_rows(DATA / "csynth_instances.tsv"), read_fifo_rows(DATA))
    print("FITTED: dict[tuple[str, str], tuple[float, ...]] = " + pprint.pformat(fitted, width=110, sort_dicts=False))
    print("FITTED_SCALARS: dict[str, float] = " + pprint.pformat(scalars, width=110, sort_dicts=False))


if __name__ == "__main__":
    main()
