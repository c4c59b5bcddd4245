"""Make the bundled QKeras models and their test data (needs the `qkeras` extra and scikit-learn).

Run from anywhere: `python models/make_qkeras_models.py`. Deterministic (fixed seeds), about half a minute.
- tiny2_qkeras.h5     the 2021 project's QKeras tiny2 (../shared/models/tiny2/model_best.h5), copied unchanged:
                      QConv2DBatchnorm + QActivation(quantized_relu(8,2)) x5, Flatten, QDense, softmax.
- tiny2_qkeras.npz    its 100 CIFAR-10 test images `x` and QKeras' logits on them `y_qkeras` (before the final
                      softmax, which the QONNX export leaves out), plus the labels `labels`.
- digits_qkeras.h5    a QKeras CNN trained on scikit-learn's 8x8 digits: input quantizer, QConv2D + quantized_relu,
                      QConv2DBatchnorm + quantized_relu, MaxPooling2D, QDense.
- digits_qkeras.npz   100 held-out digits `x` and QKeras' outputs `y_qkeras`.

Inputs are stored on their exact grid: tb_input_features.dat holds pixel/256 printed with 6 decimals; rounding to
the nearest 1/256 recovers pixel/256 exactly (the printing error is below 1e-6), so a fixed-point input type with
8 or more fractional bits represents every input exactly. The digits are k/16.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from qkeras import QActivation, QConv2D, QConv2DBatchnorm, QDense, quantized_bits, quantized_relu
from qkeras.utils import load_qmodel
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
# the original project's files, next to the repository (override with TINY2_DIR)
TINY2 = Path(os.environ.get("TINY2_DIR", HERE.parent.parent / "shared" / "models" / "tiny2"))


def make_tiny2() -> None:
    shutil.copyfile(TINY2 / "model_best.h5", HERE / "tiny2_qkeras.h5")
    model = load_qmodel(str(HERE / "tiny2_qkeras.h5"), compile=False)
    tb = TINY2 / "tb_data"
    printed = np.loadtxt(tb / "tb_input_features.dat", dtype=np.float32).reshape(-1, 32, 32, 3)
    x = (np.round(printed * 256) / 256).astype(np.float32)
    assert np.abs(x - printed).max() < 1e-6
    logits = keras.Model(model.inputs, model.layers[-1].input)
    y = np.asarray(logits(x, training=False))
    labels = np.loadtxt(tb / "tb_output_predictions.dat").argmax(1)
    np.savez_compressed(HERE / "tiny2_qkeras.npz", x=x, y_qkeras=y, labels=labels)
    print(f"tiny2_qkeras.h5: accuracy on the 100 test images {(y.argmax(1) == labels).mean():.2f}")


def make_digits_qkeras() -> None:
    x, y = digits()
    bits = dict(alpha=1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),
            # input quantizer: unsigned, 8 bits, step 1/128 (the digits k/16 lie on it, 1.0 included)
            QActivation(quantized_bits(8, 1, keep_negative=False), name="in_quant"),
            QConv2D(8, 3, padding="same", kernel_quantizer=quantized_bits(6, 0, **bits),
                    bias_quantizer=quantized_bits(6, 0, **bits), name="conv1"),
            QActivation(quantized_relu(6, 2), name="relu1"),
            QConv2DBatchnorm(16, 3, padding="valid", kernel_quantizer=quantized_bits(8, 2, **bits),
                             bias_quantizer=quantized_bits(8, 2, **bits), name="conv2"),
            QActivation(quantized_relu(8, 3), name="relu2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            QDense(10, kernel_quantizer=quantized_bits(8, 2, **bits), bias_quantizer=quantized_bits(8, 2, **bits),
                   name="logits"),
        ],
        name="digits_qkeras",
    )
    train_and_save(model, x, y)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in a fixed order, scaled to [0, 1], channels last."""
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    return (d.images[order] / 16.0).astype(np.float32)[..., None], d.target[order].astype(np.int64)


def train_and_save(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Train on the first 1500 digits, save MODEL_NAME.h5, and MODEL_NAME.npz with 100 held-out digits and the
    reloaded model's outputs for them (the saved file must compute what the trained model does)."""
    name = model.name
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:1500], y[:1500], epochs=20, batch_size=32, verbose=0)
    acc = float(model.evaluate(x[1500:], y[1500:], verbose=0)[1])
    model.save(HERE / f"{name}.h5")
    reloaded = load_qmodel(str(HERE / f"{name}.h5"), compile=False)
    test = x[1500:1600]
    out = np.asarray(reloaded(test, training=False))
    assert np.array_equal(out, np.asarray(model(test, training=False))), "saved model computes differently"
    np.savez_compressed(HERE / f"{name}.npz", x=test, y_qkeras=out, labels=y[1500:1600])
    print(f"{name}.h5: held-out accuracy {acc:.3f}")


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    make_tiny2()
    make_digits_qkeras()
