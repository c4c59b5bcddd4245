"""Build the QDQ model onnx-fuse's QDQ tests use: onnxruntime's own static quantization of a bundled float model.

Run: `pip install -e ".[test]" && python models/make_qdq_models.py` (TensorFlow for the Keras export; seconds).
Deterministic up to the tensor names tf2onnx generates: calibration on the model's own bundled inputs, MinMax ranges.
- digits_cnn_qdq.onnx  digits_cnn.h5 exported to ONNX by onnx-fuse, then `onnxruntime.quantization.quantize_static`
                       in QDQ format: int8 per-channel weights (zero point 0), uint8 activations with their
                       calibrated zero points (130 on the logits), int32 biases, float scales.
                       `QDQKeepRemovableActivations` keeps each Relu (by default onnxruntime drops a Relu whose
                       uint8 range already clamps at 0, and then no Conv -> Relu pair is left to fuse).
- digits_cnn_qdq_per_tensor.onnx  the same with per-tensor weight scales (quantize_static's default), which hls4ml
                       1.3 can convert with float scales (it cannot with unequal per-channel ones)
- digits_cnn_qdq.npz   `x`: the same 100 inputs as digits_cnn.npz
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from onnx_fuse.export import keras_to_onnx
from onnx_fuse.load import load
from onnx_fuse.normalise import normalise

HERE = Path(__file__).resolve().parent


class Inputs(CalibrationDataReader):
    def __init__(self, name: str, x: np.ndarray) -> None:
        self.rows = iter([{name: row[None]} for row in x])

    def get_next(self) -> dict | None:
        return next(self.rows, None)


def main() -> None:
    x = np.load(HERE / "digits_cnn.npz")["x"]
    float_model, _ = normalise(keras_to_onnx(load(HERE / "digits_cnn.h5").keras_model))
    name = float_model.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "float.onnx"
        onnx.save(float_model, str(source))
        for target, per_channel in [("digits_cnn_qdq.onnx", True), ("digits_cnn_qdq_per_tensor.onnx", False)]:
            quantize_static(
                str(source),
                str(HERE / target),
                Inputs(name, x),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                extra_options={"QDQKeepRemovableActivations": True},
            )
            model = onnx.load(str(HERE / target))
            print(target, sorted({n.op_type for n in model.graph.node}), f"{(HERE / target).stat().st_size} bytes")
    np.savez_compressed(HERE / "digits_cnn_qdq.npz", x=x)

if __name__ == "__main__":
    main()
