"""Make the bundled QKeras model with alpha='auto' / 'auto_po2' weight quantizers (needs the `qkeras` extra and
scikit-learn).

Run from anywhere: `python models/make_qkeras_alpha_models.py`. Deterministic (fixed seeds), about half a minute.
- digits_qkeras_alpha.h5   a QKeras CNN trained on scikit-learn's 8x8 digits, every weight quantizer with a
                           per-output-channel scale QKeras computes from the weight itself:
                           input quantizer, QConv2D (alpha='auto') + quantized_relu, QConv2D (alpha='auto_po2')
                           + quantized_relu, MaxPooling2D, QDense (alpha='auto') + quantized_relu, QDense
                           (alpha='auto', the logits). Biases: quantized_bits with alpha=1, each on the grid of
                           the quantizer after its layer or coarser (see below).
- digits_qkeras_alpha.npz  100 held-out digits `x` (k/16, exact on the input grid), QKeras' outputs on them
                           `y_qkeras` and the labels `labels`.

Why each bias step is a multiple of the next activation's step: where a conv's accumulator is 0 (the digits' zero
border), its output is its bias. A bias on half a step of the quantized_relu after it is an exact rounding tie, and
QKeras' float32 conv sums float weights to +-1e-7 instead of 0 and so rounds such a tie by its summation order, which
no other runtime reproduces (with conv1's bias at quantized_bits(8, 2), step 1/32 against relu1's 1/16, onnxruntime
rounded 12 of 51,200 relu1 values the other way and the logits moved by up to 0.089).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from make_qkeras_models import digits, train_and_save
from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu


def make_digits_qkeras_alpha() -> None:
    x, y = digits()
    bias = dict(alpha=1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),
            # input quantizer: unsigned, 8 bits, step 1/128 (the digits k/16 lie on it, 1.0 included)
            QActivation(quantized_bits(8, 1, keep_negative=False), name="in_quant"),
            QConv2D(8, 3, padding="same", kernel_quantizer=quantized_bits(6, 0, alpha="auto"),
                    bias_quantizer=quantized_bits(6, 2, **bias), name="conv1"),
            QActivation(quantized_relu(6, 2), name="relu1"),
            QConv2D(16, 3, padding="valid", kernel_quantizer=quantized_bits(8, 0, alpha="auto_po2"),
                    bias_quantizer=quantized_bits(8, 2, **bias), name="conv2"),
            QActivation(quantized_relu(8, 3), name="relu2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            QDense(16, kernel_quantizer=quantized_bits(8, 0, alpha="auto"),
                   bias_quantizer=quantized_bits(8, 2, **bias), name="dense1"),
            QActivation(quantized_relu(8, 3), name="relu3"),
            QDense(10, kernel_quantizer=quantized_bits(8, 0, alpha="auto"),
                   bias_quantizer=quantized_bits(8, 2, **bias), name="logits"),
        ],
        name="digits_qkeras_alpha",
    )
    train_and_save(model, x, y)

if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    make_digits_qkeras_alpha()
