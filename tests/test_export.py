"""Real Keras models through real tf2onnx: Sequential and Functional, .h5 and .keras, parity with Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import MODELS, op_types
from onnx_fuse.export import keras_to_onnx
from onnx_fuse.fusion import fuse
from onnx_fuse.load import load
from onnx_fuse.normalise import normalise
from onnx_fuse.verify import keras_runner, make_feeds, run_onnx

CASES = {
    # file: Conv->Relu pairs fused
    "digits_cnn.h5": 2,  # Sequential; its second pair hides behind a Keras-3 Mul+Add BatchNorm
    "tiny2_float.h5": 5,
    "digits_mlp.h5": 2,  # Dense -> ReLU twice: DenseRelu
    "digits_conv1d.keras": 2,  # Functional Conv1D: tf2onnx's Unsqueeze/Conv/Squeeze/Add form, see normalise/conv1d.py
}


@pytest.mark.parametrize("name", list(CASES))
def test_export_normalise_fuse_keeps_numbers(name):
    source = load(MODELS / name)
    exported = keras_to_onnx(source.keras_model)
    batch = [d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim][0]
    assert batch == 1
    normalised, _ = normalise(exported)
    fused, report = fuse(normalised)
    assert report.pairs == CASES[name]
    assert op_types(fused).count("ConvRelu") + op_types(fused).count("DenseRelu") == CASES[name]
    feeds = make_feeds(normalised, samples=8, seed=3, data=MODELS / name.replace(".h5", ".npz").replace(".keras", ".npz"))
    expected = keras_runner(source.keras_model)(feeds)
    unfused = run_onnx(normalised, feeds)
    np.testing.assert_allclose(unfused[0], expected[0], rtol=1e-4, atol=1e-4)
    assert np.array_equal(run_onnx(fused, feeds)[0], unfused[0])


def test_tiny2_keeps_its_top1_on_the_real_test_images():
    source = load(MODELS / "tiny2_float.h5")
    fused, report = fuse(normalise(keras_to_onnx(source.keras_model))[0])
    data = np.load(MODELS / "tiny2_float.npz")
    out = run_onnx(fused, {"image": data["x"]})[0]
    keras_out = source.keras_model.predict(data["x"], verbose=0)
    assert (out.argmax(1) == keras_out.argmax(1)).all()
    # the float rebuild agrees with the original QKeras model on most images (models/make_models.py)
    assert (out.argmax(1) == data["y_qkeras"].argmax(1)).mean() >= 0.8


def test_input_named_input_is_renamed_for_hls4ml(tmp_path):
    inp = keras.Input((6, 6, 2), name="input")
    out = keras.layers.Conv2D(3, 3, activation="relu")(inp)
    model = keras.Model(inp, out)
    exported = keras_to_onnx(model)
    assert [i.name for i in exported.graph.input] == ["model_input"]


def test_two_input_model_exports_and_fuses():
    a, b = keras.Input((6, 6, 2), name="a"), keras.Input((6, 6, 2), name="b")
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Flatten()(h))
    normalised, _ = normalise(keras_to_onnx(model))
    fused, report = fuse(normalised)
    assert report.pairs == 1
    feeds = make_feeds(normalised, samples=4, seed=0, data=None)
    np.testing.assert_allclose(run_onnx(normalised, feeds)[0], keras_runner(model)(feeds)[0], rtol=1e-4, atol=1e-4)
    assert np.array_equal(run_onnx(fused, feeds)[0], run_onnx(normalised, feeds)[0])
