"""How close an hls4ml C-sim output is to onnxruntime's on the same inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class CsimAccuracy:
    samples: int
    max_abs_err: float  # over every output value; NaN when either side has a non-finite value where the other differs
    top1_agree: int  # inputs whose largest output is at the same index on both sides

    def as_dict(self) -> dict:
        return asdict(self)


def csim_vs_onnx(csim: np.ndarray, reference: np.ndarray) -> CsimAccuracy:
    """C-sim outputs against onnxruntime's, both one row per input (any trailing shape)."""
    samples = len(reference)
    a = np.asarray(csim, dtype=np.float64).reshape(samples, -1)
    b = np.asarray(reference, dtype=np.float64).reshape(samples, -1)
    if a.shape != b.shape:
        raise ValueError(f"C-sim output shape {a.shape} differs from onnxruntime's {b.shape}")
    if a.size == 0:
        return CsimAccuracy(samples, 0.0, samples)
    same_nonfinite = (a == b) | (np.isnan(a) & np.isnan(b))  # NaN at the same place on both sides agrees
    diff = np.where(same_nonfinite, 0.0, np.abs(a - b))
    top1 = int(np.sum(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    return CsimAccuracy(samples, float(np.max(diff)), top1)
