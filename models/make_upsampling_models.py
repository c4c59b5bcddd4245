"""Build the Keras upsampling models for onnx-fuse's upsampling tests (tf2onnx's UpSampling idiom -> Resize).

Run: `python models/make_upsampling_models.py`. Deterministic (fixed seeds: the same weights and inputs on every
run; only the save date inside the .keras zip changes); seconds on a CPU. No training: the
graphs are what matters, weights are seeded random with random biases so every ReLU cuts.
- conv_autoencoder_up2d.keras  a conv autoencoder as hls4ml users build them: Conv2D-ReLU, MaxPool2D,
                               Conv2D-ReLU, MaxPool2D, UpSampling2D, Conv2D-ReLU, UpSampling2D, Conv2D (8x8x1)
- conv_autoencoder_up1d.keras  1-D: Conv1D-ReLU, UpSampling1D(3), Conv1D (8 x 2 -> 24 x 2)
- *.npz                        `x`: 16 seeded inputs in the model's input shape
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLES = 16


def conv(dim: int, filters: int, activation: str | None = None) -> keras.layers.Layer:
    layer = keras.layers.Conv2D if dim == 2 else keras.layers.Conv1D
    return layer(filters, 3, padding="same", activation=activation, bias_initializer="random_normal")


def autoencoder_2d() -> keras.Model:
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.MaxPooling2D()(conv(2, 4, "relu")(inp))
    h = keras.layers.MaxPooling2D()(conv(2, 8, "relu")(h))
    h = conv(2, 8, "relu")(keras.layers.UpSampling2D()(h))
    return keras.Model(inp, conv(2, 1)(keras.layers.UpSampling2D()(h)))


def autoencoder_1d() -> keras.Model:
    inp = keras.Input((8, 2), name="signal")
    h = conv(1, 4, "relu")(inp)
    return keras.Model(inp, conv(1, 2)(keras.layers.UpSampling1D(3)(h)))


def main() -> None:
    for index, (name, build) in enumerate({"conv_autoencoder_up2d": autoencoder_2d,
                                           "conv_autoencoder_up1d": autoencoder_1d}.items()):
        keras.utils.set_random_seed(index)
        model = build()
        model.save(HERE / f"{name}.keras")
        x = np.random.default_rng(index).uniform(0, 1, (SAMPLES, *model.input_shape[1:])).astype(np.float32)
        np.savez_compressed(HERE / f"{name}.npz", x=x)
        print(f"{name}: {model.input_shape[1:]} -> {model.output_shape[1:]}")


if __name__ == "__main__":
    main()
