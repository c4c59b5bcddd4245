"""hls4ml 1.3 extension for onnx-fuse's ConvRelu nodes: each pair becomes one conv with ReLU in its write-back.

Public: register(), config_from_fused_onnx(), convert_from_fused_onnx(), run_csim().
Flow: preprocess.py (inline, qonnx channels-last, re-fuse) -> handler.py (ConvRelu layer) -> passes.py (lower to
Conv + ReLU in the parse flow; fuse again after precision inference) -> templates.py (ReLU in nnet::cast).
"""

from __future__ import annotations

from onnx_fuse.lazy import lazy_exports

_EXPORTS = {
    "config_from_fused_onnx": "hls_backend.convert",
    "convert_from_fused_onnx": "hls_backend.convert",
    "register": "hls_backend.registration",
    "run_csim": "hls_backend.csim",
}
__all__ = sorted(_EXPORTS)
# Lazy: importing hls4ml takes seconds; hls_backend.fifo_estimate and friends should not pay for it.
# (No submodule shares a name with an export: importing it would rebind the package attribute.)
__getattr__ = lazy_exports(__name__, _EXPORTS)
