"""QKeras models in: detection, loading (qkeras-v3, the `qkeras` extra) and export to QONNX."""

from onnx_fuse.qkeras.export import QkerasExport, qkeras_to_qonnx
from onnx_fuse.qkeras.load import is_qkeras_file, load_qkeras

__all__ = ["QkerasExport", "is_qkeras_file", "load_qkeras", "qkeras_to_qonnx"]
