"""Convert the MLPerf Tiny DS-CNN (models/mlperf_dscnn.keras) to TFLite, float and int8, as MLPerf Tiny ships it.

Run: `python models/make_tflite_models.py` (TensorFlow only; seconds). TensorFlow's TFLiteConverter:
- mlperf_dscnn_float.tflite  float32 throughout
- mlperf_dscnn_int8.tflite   full-integer int8 weights and activations (post-training quantization calibrated on
                             models/mlperf_dscnn.npz's inputs), float input and output as the converter's default
Both keep the Keras model's input, 49x10x1 MFCC features; models/mlperf_dscnn.npz holds their test inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent


def main() -> None:
    tf.random.set_seed(0)
    model = keras.models.load_model(HERE / "mlperf_dscnn.keras")
    x = np.load(HERE / "mlperf_dscnn.npz")["x"].astype(np.float32)
    (HERE / "mlperf_dscnn_float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in x)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    (HERE / "mlperf_dscnn_int8.tflite").write_bytes(converter.convert())
    for name in ("float", "int8"):
        print(f"mlperf_dscnn_{name}.tflite: {(HERE / f'mlperf_dscnn_{name}.tflite').stat().st_size} bytes")


if __name__ == "__main__":
    main()
