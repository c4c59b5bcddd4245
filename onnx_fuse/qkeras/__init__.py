"""QKeras models out: export to QONNX (they are loaded, qkeras-v3 in safe mode, by onnx_fuse/keras_loaders.py)."""

from onnx_fuse.qkeras.export import QkerasExport, qkeras_to_qonnx

__all__ = ["QkerasExport", "qkeras_to_qonnx"]
