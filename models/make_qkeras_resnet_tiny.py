"""Make qkeras_resnet_tiny.h5: the architecture of the QKeras MLPerf Tiny submission resnet_v1_eembc_quantized_tiny
(hls4ml-finn-mlperftiny/CIFAR10, resnet_v1_eembc.py with hls4ml/tiny_pynq-z2.yml), seeded weights (needs the
`qkeras` extra).

Run from anywhere: `python models/make_qkeras_resnet_tiny.py`. Deterministic (fixed seed), a few seconds.
The config: filters [32, 32], kernels [3, 3, 3], strides '411', skip 0, avg_pooling 0, final_activation 1;
quantized_bits(8, 2, alpha=1) on every kernel and bias, quantized_relu(8, 2) after every conv (one instance of each
shared by all layers, as the training script builds them). Input 32x32x3:
| layer | filters | kernel | stride | output |
|---|---|---|---|---|
| QConv2DBatchnorm + QActivation(quantized_relu(8,2)) | 32 | 3x3 | 4 | 8x8x32 |
| QConv2DBatchnorm + QActivation(quantized_relu(8,2)) | 32 | 3x3 | 1 | 8x8x32 |
| QConv2DBatchnorm + QActivation(quantized_relu(8,2)) | 32 | 3x3 | 1 | 8x8x32 (skip 0: no Add) |
| Flatten -> QDense(10) -> softmax | | | | 10 |
The trained file is not bundled; here the kernels are he_normal, the biases N(0, 0.1) and the BatchNormalization
statistics drawn at random (gamma U(0.5, 1.5), beta N(0, 0.3), mean N(0, 0.5), variance U(0.5, 2)), so that
folding them is exercised. With these weights, N(0, 1) inputs (the parity check's seed-0 random inputs before they
were put on a grid) make TensorFlow's and onnxruntime's float32 sums in the first conv round one step apart at a
quantized_relu: tests/test_qkeras_rounding.py. qkeras_resnet_tiny_off_grid.npy holds one such input.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from qkeras import QActivation, QConv2DBatchnorm, QDense, quantized_bits, quantized_relu

HERE = Path(__file__).resolve().parent
SEED = 17


def resnet_tiny(seed: int = SEED, skip: bool = False) -> keras.Model:
    """skip=True: the config's skip 1 instead, the residual Add of resnet_v1_eembc.py (its second input through
    QActivation(quantized_bits), a QActivation(quantized_relu) after it)."""
    keras.utils.set_random_seed(seed)
    logit_quantizer = quantized_bits(8, 2, alpha=1, use_stochastic_rounding=0)
    activation_quantizer = quantized_relu(8, 2, use_stochastic_rounding=0)

    def conv(stride: int) -> QConv2DBatchnorm:
        return QConv2DBatchnorm(32, kernel_size=3, strides=stride, padding="same", kernel_quantizer=logit_quantizer,
                                bias_quantizer=logit_quantizer, kernel_initializer="he_normal")

    inputs = keras.Input((32, 32, 3), name="input_1")
    x = QActivation(activation=activation_quantizer)(conv(4)(inputs))
    y = QActivation(activation=activation_quantizer)(conv(1)(x))
    y = conv(1)(y)
    if skip:
        x = keras.layers.Add()([x, QActivation(activation=logit_quantizer)(y)])
    else:
        x = y
    x = QActivation(activation=activation_quantizer)(x)
    x = keras.layers.Flatten()(x)
    x = QDense(10, kernel_quantizer=logit_quantizer, bias_quantizer=logit_quantizer,
               kernel_initializer="he_normal")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(x))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, QConv2DBatchnorm):
            bn, n = layer.batchnorm, layer.filters
            bn.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            bn.beta.assign(rng.normal(0, 0.3, n).astype(np.float32))
            bn.moving_mean.assign(rng.normal(0, 0.5, n).astype(np.float32))
            bn.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))
        if isinstance(layer, (QConv2DBatchnorm, QDense)):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
    return model


def off_grid_input() -> np.ndarray:
    """Sample 13 of the N(0, 1) inputs the parity check drew with seed 0 before they were put on a grid: the one
    whose first-conv sum TensorFlow rounds to exactly 148.5 quantized_relu steps (148 after half-to-even) and
    onnxruntime to 148.50003 (149); the exact sum is 148.500036."""
    return np.random.default_rng(0).standard_normal((16, 32, 32, 3)).astype(np.float32)[13:14]


if __name__ == "__main__":
    resnet_tiny().save(HERE / "qkeras_resnet_tiny.h5")
    np.save(HERE / "qkeras_resnet_tiny_off_grid.npy", off_grid_input())
    print("qkeras_resnet_tiny.h5, qkeras_resnet_tiny_off_grid.npy written")
