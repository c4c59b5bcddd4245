"""hls4ml 1.3 extension for onnx-fuse's fused nodes: each pair becomes one conv/Dense with its activation in the
write-back.

Public: register(), config_from_fused_onnx(), convert(), run_csim().
Flow: preprocess.py (inline, tag the pairs, qonnx channels-last) -> conversion.py (mark the tagged layers in the
config) -> passes.py (fuse after precision inference) -> templates.py (the activation in nnet::cast).
"""

from __future__ import annotations

from onnx_fuse.lazy import lazy_exports

_EXPORTS = {
    "config_from_fused_onnx": "hls_backend.conversion",
    "convert": "hls_backend.conversion",
    "register": "hls_backend.registration",
    "run_csim": "hls_backend.csim",
}
__all__ = sorted(_EXPORTS)
# Lazy: importing hls4ml takes seconds; hls_backend.fifo_estimate and friends should not pay for it.
# (No submodule shares a name with an export: importing it would rebind the package attribute.)
__getattr__ = lazy_exports(__name__, _EXPORTS)
