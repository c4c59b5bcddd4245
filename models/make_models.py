"""Build the small real models that onnx-fuse's tests and README use.

Run from anywhere: `python models/make_models.py [NAME ...]` (all when no name is given). Deterministic (fixed seeds); takes under a minute on 2 cores.
- digits_cnn.h5     Sequential Conv2D CNN trained on scikit-learn's bundled 8x8 digits (Conv->ReLU, Conv->BN->ReLU).
- digits_conv1d.keras  Functional Conv1D model on the same digits, rows as time steps.
- digits_mlp.h5     Sequential MLP (Dense->ReLU x2) on the same digits, the classic hls4ml shape.
- tiny2_float.h5    float rebuild of the 2021 project's tiny2 (../shared/models/tiny2), 5 Conv->ReLU pairs.
- digits_mobilenet.keras  MobileNet-style blocks (depthwise + pointwise convs, BN, ReLU6 = Clip(0, 6)), 5 pairs.
- digits_leaky.h5   Conv/Dense -> LeakyReLU(0.1) (YOLO-tiny style), 3 pairs.
- digits_act1d.keras  Conv1D model with every activation kind: Conv1D and Dense -> LeakyReLU(0.1), depthwise,
                    pointwise (1x1) Conv1D and Dense -> ReLU6, Conv1D -> ReLU, 6 pairs (one compiled design covers
                    every activation).
- *.npz             test inputs `x` (and reference outputs `y` where known) for each model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py
import keras
import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
TINY2 = HERE.parent.parent / "shared" / "models" / "tiny2"


def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.images[order] / 16.0).astype(np.float32)
    return x, d.target[order].astype(np.int64)


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[:1500], y[:1500], epochs=epochs, batch_size=32, verbose=0)
    return float(model.evaluate(x[1500:], y[1500:], verbose=0)[1])


def save(model, filename: str, test_inputs: np.ndarray, accuracy: float) -> None:
    """The model, its held-out test inputs next to it (same name, .npz) and its held-out accuracy printed."""
    model.save(HERE / filename)
    np.savez_compressed((HERE / filename).with_suffix(".npz"), x=test_inputs)
    print(f"{filename}: held-out accuracy {accuracy:.3f}")


def make_digits_cnn(x: np.ndarray, y: np.ndarray) -> None:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(16, 3, padding="valid", name="conv2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.ReLU(name="relu2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )
    acc = train(model, x[..., None], y, epochs=30)
    save(model, "digits_cnn.h5", x[1500:1600, :, :, None], acc)


def make_digits_conv1d(x: np.ndarray, y: np.ndarray) -> None:
    inp = keras.Input((8, 8), name="rows")
    h = keras.layers.Conv1D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.Conv1D(16, 3, padding="valid", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="digits_conv1d")
    acc = train(model, x, y, epochs=30)
    save(model, "digits_conv1d.keras", x[1500:1600], acc)


def make_digits_mlp(x: np.ndarray, y: np.ndarray) -> None:
    model = keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(16, activation="relu", name="fc2"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_mlp",
    )
    flat = x.reshape(len(x), 64)
    acc = train(model, flat, y, epochs=30)
    save(model, "digits_mlp.h5", flat[1500:1600], acc)


def make_digits_mobilenet(x: np.ndarray, y: np.ndarray) -> None:
    def block(h, filters: int, stride: int, name: str):
        h = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"{name}_dw")(h)
        h = keras.layers.BatchNormalization(name=f"{name}_dw_bn")(h)
        h = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(h)
        h = keras.layers.Conv2D(filters, 1, name=f"{name}_pw")(h)
        h = keras.layers.BatchNormalization(name=f"{name}_pw_bn")(h)
        return keras.layers.ReLU(6.0, name=f"{name}_pw_relu6")(h)

    inp = keras.Input((8, 8, 1), name="digit")
    h = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    h = keras.layers.ReLU(6.0, name="stem_relu6")(h)
    h = block(h, 16, 1, "b1")
    h = block(h, 16, 2, "b2")
    out = keras.layers.Dense(10, name="logits")(keras.layers.Flatten(name="flatten")(h))
    model = keras.Model(inp, out, name="digits_mobilenet")
    acc = train(model, x[..., None], y, epochs=20)
    save(model, "digits_mobilenet.keras", x[1500:1600, :, :, None], acc)


def make_digits_leaky(x: np.ndarray, y: np.ndarray) -> None:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),
            keras.layers.Conv2D(8, 3, padding="same", name="conv1"),
            keras.layers.LeakyReLU(0.1, name="leaky1"),
            keras.layers.Conv2D(16, 3, name="conv2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.LeakyReLU(0.1, name="leaky2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(32, name="fc"),
            keras.layers.LeakyReLU(0.1, name="leaky3"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_leaky",
    )
    acc = train(model, x[..., None], y, epochs=20)
    save(model, "digits_leaky.h5", x[1500:1600, :, :, None], acc)


def make_digits_act1d(x: np.ndarray, y: np.ndarray) -> None:
    inp = keras.Input((8, 8), name="rows")
    h = keras.layers.Conv1D(16, 3, padding="same", name="conv1")(inp)
    h = keras.layers.LeakyReLU(0.1, name="leaky1")(h)
    h = keras.layers.DepthwiseConv1D(3, padding="same", name="dw")(h)
    h = keras.layers.ReLU(6.0, name="dw_relu6")(h)
    h = keras.layers.Conv1D(16, 1, name="pw")(h)
    h = keras.layers.ReLU(6.0, name="pw_relu6")(h)
    h = keras.layers.Conv1D(16, 3, padding="valid", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, name="fc1")(h)
    h = keras.layers.ReLU(6.0, name="fc1_relu6")(h)
    h = keras.layers.Dense(16, name="fc2")(h)
    h = keras.layers.LeakyReLU(0.1, name="leaky2")(h)
    out = keras.layers.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="digits_act1d")
    acc = train(model, x, y, epochs=20)
    save(model, "digits_act1d.keras", x[1500:1600], acc)


def on_grid(w: np.ndarray) -> np.ndarray:
    """QKeras quantized_bits(8, 2): step 1/32, range [-4, 3.96875]."""
    return np.clip(np.round(w * 32), -128, 127) / 32


def make_tiny2() -> None:
    """Float Keras rebuild of tiny2: BN folded into each conv, weights put on the quantized_bits(8,2) grid.

    The ReLUs are plain (not clipped at 3.984375 like QKeras' quantized_relu(8,2)): hls4ml's saturating ReLU
    result type supplies the clip in hardware, and a plain ReLU keeps every Conv->ReLU pair a plain ONNX Relu.
    """
    with h5py.File(TINY2 / "model_best_nosoftmax.h5", "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        x = inp = keras.Input((32, 32, 3), name="image")
        for layer in layers:
            cfg, kind = layer["config"], layer["class_name"]
            name = cfg["name"]
            if kind == "QConv2DBatchnorm":
                g = f["model_weights"][name][name]
                bn = g[next(k for k in g if k.startswith("batch_normalization"))]
                scale = bn["gamma:0"][()] / np.sqrt(bn["moving_variance:0"][()] + cfg["epsilon"])
                kernel = on_grid(g["kernel:0"][()] * scale)
                bias = on_grid((g["bias:0"][()] - bn["moving_mean:0"][()]) * scale + bn["beta:0"][()])
                conv = keras.layers.Conv2D(
                    cfg["filters"], cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"], name=name
                )
                x = conv(x)
                conv.set_weights([kernel, bias])
            elif kind == "QActivation":
                x = keras.layers.ReLU(name=name)(x)
            elif kind == "Flatten":
                x = keras.layers.Flatten(name=name)(x)
            elif kind == "QDense":
                g = f["model_weights"][name][name]
                dense = keras.layers.Dense(cfg["units"], name=name)
                x = dense(x)
                dense.set_weights([on_grid(g["kernel:0"][()]), on_grid(g["bias:0"][()])])
            elif kind != "InputLayer":
                sys.exit(f"tiny2: unexpected layer {kind}")
    model = keras.Model(inp, x, name="tiny2_float")
    model.save(HERE / "tiny2_float.h5")
    tb = TINY2 / "tb_data"
    images = np.loadtxt(tb / "tb_input_features.dat", dtype=np.float32).reshape(-1, 32, 32, 3)
    qkeras = np.loadtxt(tb / "tb_keras_predictions.dat", dtype=np.float32)
    agree = (model.predict(images, verbose=0).argmax(1) == qkeras.argmax(1)).mean()
    np.savez_compressed(HERE / "tiny2_float.npz", x=images, y_qkeras=qkeras)
    print(f"tiny2_float.h5: top-1 agreement with the QKeras predictions {agree:.2f}")


MAKERS = {
    "digits_cnn": make_digits_cnn,
    "digits_conv1d": make_digits_conv1d,
    "digits_mlp": make_digits_mlp,
    "digits_mobilenet": make_digits_mobilenet,
    "digits_leaky": make_digits_leaky,
    "digits_act1d": make_digits_act1d,
    "tiny2_float": lambda x, y: make_tiny2(),
}

if __name__ == "__main__":
    xd, yd = digits()
    for name in sys.argv[1:] or MAKERS:
        keras.utils.set_random_seed(0)  # per model: each file is the same whichever others are made with it
        MAKERS[name](xd, yd)
