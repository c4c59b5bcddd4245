from onnx_fuse.cli import entry

entry()
