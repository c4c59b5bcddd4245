"""onnx-fuse: fuse Conv/Dense -> activation pairs into one node (such as `ConvRelu`) so hls4ml builds one dataflow
stage per pair."""

from __future__ import annotations

from onnx_fuse.lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "FUSED_DOMAIN": "onnx_fuse.patterns",
    "Options": "onnx_fuse.pipeline",
    "Result": "onnx_fuse.pipeline",
    "fuse": "onnx_fuse.api",
    "run": "onnx_fuse.pipeline",
}
__all__ = sorted(_EXPORTS)
# Lazy: `onnx-fuse` and `python -m onnx_fuse` import this package before the CLI can install its signal
# handlers; importing onnx/onnxscript here would leave a Ctrl-C during those seconds to a traceback.
# normalise() is not re-exported: the subpackage of that name would shadow it once imported (the fusion pass lives
# in onnx_fuse.fusion so that onnx_fuse.fuse is the notebook function).
__getattr__ = lazy_exports(__name__, _EXPORTS)
