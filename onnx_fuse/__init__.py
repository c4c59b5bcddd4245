"""onnx-fuse: fuse Conv->ReLU pairs into one `ConvRelu` node so hls4ml can build one dataflow stage per pair."""

from onnx_fuse.fuse import FUSED_DOMAIN, fuse
from onnx_fuse.normalise import normalise
from onnx_fuse.pipeline import Options, Result, run

__version__ = "0.1.0"
__all__ = ["FUSED_DOMAIN", "Options", "Result", "fuse", "normalise", "run"]
