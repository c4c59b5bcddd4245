"""Rebuild the MLPerf Tiny v1 reference architectures (mlcommons/tiny, keras_model.py of each benchmark) in Keras 3.

Run from anywhere: `python models/make_mlperf_tiny.py [NAME ...]`. Deterministic: seeded weights (no training),
with BatchNormalization statistics drawn at random too, so that folding them is exercised (default BN is the
identity). Each model is saved as NAME.keras plus NAME.npz holding test inputs `x` (seeded, uniform in [-1, 1): 16 samples, 4 for MobileNet).

Shapes and layer sequences are the published ones, with one change: the final softmax is left out (logits out).
hls4ml's softmax is a lookup-table approximation, and these models exist to compare C-sim with onnxruntime.
Dropout layers are kept (they are the identity at inference and vanish in the export).
- mlperf_resnet8      image classification, 32x32x3: 3 residual stacks (16/32/64), AveragePooling2D(8), Dense(10)
- mlperf_dscnn        keyword spotting, 49x10x1: Conv(10x4, s2) + 4 depthwise-separable blocks (64), AvgPool(25x5)
- mlperf_autoencoder  anomaly detection, 640 inputs: Dense(128)-BN-ReLU x4, Dense(8)-BN-ReLU, x4 back, Dense(640)
- mlperf_mobilenet    visual wake words, 96x96x3: MobileNet-v1 alpha 0.25 (13 separable blocks), AvgPool(3), Dense(2)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

HERE = Path(__file__).resolve().parent
layers = keras.layers


def bn(name: str) -> layers.BatchNormalization:
    """BatchNormalization with non-trivial seeded statistics (the Keras defaults would fold to the identity)."""
    return layers.BatchNormalization(
        name=name,
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5),
        beta_initializer=keras.initializers.RandomNormal(stddev=0.1),
        moving_mean_initializer=keras.initializers.RandomNormal(stddev=0.1),
        moving_variance_initializer=keras.initializers.RandomUniform(0.5, 1.5),
    )


def resnet8() -> keras.Model:
    """mlcommons/tiny benchmark/training/image_classification/keras_model.py (resnet_v1_eembc)."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", kernel_initializer="he_normal", name="conv0")(inputs)
    x = layers.Activation("relu", name="relu0")(bn("bn0")(x))
    for stack, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", kernel_initializer="he_normal",
                          name=f"conv{stack}a")(x)
        y = layers.Activation("relu", name=f"relu{stack}a")(bn(f"bn{stack}a")(y))
        y = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"conv{stack}b")(y)
        y = bn(f"bn{stack}b")(y)
        if stride != 1:  # projection shortcut: 1x1 conv with the block's stride
            x = layers.Conv2D(filters, 1, strides=stride, padding="same", kernel_initializer="he_normal",
                              name=f"shortcut{stack}")(x)
        x = layers.Activation("relu", name=f"relu{stack}")(layers.Add(name=f"add{stack}")([x, y]))
    x = layers.AveragePooling2D(pool_size=8, name="pool")(x)
    outputs = layers.Dense(10, name="logits")(layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name="mlperf_resnet8")


def dscnn() -> keras.Model:
    """mlcommons/tiny benchmark/training/keyword_spotting/keras_model.py (ds_cnn, 64 filters)."""
    inputs = keras.Input((49, 10, 1), name="mfcc")
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", name="conv0")(inputs)
    x = layers.Dropout(0.2, name="drop0")(layers.Activation("relu", name="relu0")(bn("bn0")(x)))
    for i in range(1, 5):
        x = layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = layers.Activation("relu", name=f"dw_relu{i}")(bn(f"dw_bn{i}")(x))
        x = layers.Conv2D(64, 1, padding="same", name=f"pw{i}")(x)
        x = layers.Activation("relu", name=f"pw_relu{i}")(bn(f"pw_bn{i}")(x))
    x = layers.Dropout(0.4, name="drop1")(x)
    x = layers.AveragePooling2D(pool_size=(25, 5), name="pool")(x)
    outputs = layers.Dense(12, name="logits")(layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name="mlperf_dscnn")


def autoencoder() -> keras.Model:
    """mlcommons/tiny benchmark/training/anomaly_detection/keras_model.py (640 = 5 frames x 128 mels)."""
    inputs = keras.Input((640,), name="frames")
    x = inputs
    for i, units in enumerate((128, 128, 128, 128, 8, 128, 128, 128, 128)):
        x = layers.Dense(units, name=f"dense{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(bn(f"bn{i}")(x))
    outputs = layers.Dense(640, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="mlperf_autoencoder")


def mobilenet_v1_025() -> keras.Model:
    """mlcommons/tiny benchmark/training/visual_wake_words/vww_model.py (MobileNet-v1, alpha 0.25, 96x96x3)."""
    inputs = keras.Input((96, 96, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv0")(inputs)
    x = layers.Activation("relu", name="relu0")(bn("bn0")(x))
    blocks = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (128, 1), (128, 1), (128, 1),
              (256, 2), (256, 1))
    for i, (filters, stride) in enumerate(blocks, start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}")(x)
        x = layers.Activation("relu", name=f"dw_relu{i}")(bn(f"dw_bn{i}")(x))
        x = layers.Conv2D(filters, 1, padding="same", name=f"pw{i}")(x)
        x = layers.Activation("relu", name=f"pw_relu{i}")(bn(f"pw_bn{i}")(x))
    x = layers.AveragePooling2D(pool_size=x.shape[1:3], name="pool")(x)
    outputs = layers.Dense(2, name="logits")(layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name="mlperf_mobilenet")


BUILDERS = {
    "mlperf_resnet8": resnet8,
    "mlperf_dscnn": dscnn,
    "mlperf_autoencoder": autoencoder,
    "mlperf_mobilenet": mobilenet_v1_025,
}


def make(name: str) -> None:
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    model.save(HERE / f"{name}.keras")
    samples = 4 if name == "mlperf_mobilenet" else 16  # 96x96x3 random floats do not compress: keep the file small
    shape = (samples, *model.input_shape[1:])
    x = np.random.default_rng(1).uniform(-1.0, 1.0, shape).astype(np.float32)
    np.savez_compressed(HERE / f"{name}.npz", x=x)
    print(f"{name}.keras: {model.count_params()} parameters, input {model.input_shape[1:]}")


if __name__ == "__main__":
    for name in sys.argv[1:] or BUILDERS:
        make(name)
