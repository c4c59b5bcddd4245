"""hls4ml extension for onnx-fuse's ConvRelu nodes (not implemented yet: see the hls_backend issue)."""
