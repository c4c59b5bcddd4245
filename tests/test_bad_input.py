"""Bad input: one clear error line, exit 2, no output file, input untouched — never a traceback."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from onnx import helper

from conftest import MODELS, make_model
from onnx_fuse.cli import main


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@keras.saving.register_keras_serializable(package="test")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2


def custom_layer_model(tmp: Path) -> Path:
    """Saved with a custom layer that the loading process will not know (like QKeras' QConv2DBatchnorm)."""
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, Doubler()(keras.layers.Conv2D(2, 3, activation="relu")(inp)))
    path = tmp / "custom.keras"
    model.save(path)
    return path


def dynamic_spatial_keras(tmp: Path) -> Path:
    inp = keras.Input((None, None, 3))
    path = tmp / "dynamic.h5"
    keras.Model(inp, keras.layers.Conv2D(2, 3, activation="relu")(inp)).save(path)
    return path


def weights_only(tmp: Path) -> Path:
    model = keras.models.load_model(MODELS / "digits_cnn.h5", compile=False)
    path = tmp / "weights.weights.h5"
    model.save_weights(path)
    return path.rename(tmp / "weights.h5")


def dynamic_spatial_onnx(tmp: Path) -> Path:
    path = tmp / "dyn.onnx"
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [], {"x": [1, 3, "H", "W"]}, {"y": [1, 3, "H", "W"]})
    path.write_bytes(model.SerializeToString())
    return path


def missing_initializer_onnx(tmp: Path) -> Path:
    path = tmp / "missing_init.onnx"
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["y"])],
        [],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 2, 6, 6]},
    )
    path.write_bytes(model.SerializeToString())
    return path


def zip_without_model(tmp: Path) -> Path:
    path = tmp / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras archive")
    return path


def cyclic_onnx(tmp: Path) -> Path:
    path = tmp / "cycle.onnx"
    model = make_model(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])], [], {"x": [1, 3]}, {"a": [1, 3]}
    )
    path.write_bytes(model.SerializeToString())
    return path


def write(name: str, content: bytes):
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path

    return make


CASES = {
    "missing file": (lambda tmp: tmp / "nope.h5", "input file not found"),
    "directory": (lambda tmp: (tmp / "dir.h5").mkdir() or tmp / "dir.h5", "is a directory"),
    "wrong extension": (write("model.txt", b"hello"), "unsupported file type '.txt'"),
    "empty file": (write("empty.onnx", b""), "input file is empty"),
    "text as .h5": (write("text.h5", b"not a model at all\n" * 10), "not an HDF5 file"),
    "text as .keras": (write("text.keras", b"not a zip\n" * 10), "not a Keras .keras archive"),
    "random bytes as .onnx": (write("random.onnx", np.random.default_rng(0).bytes(4096)), "ONNX"),
    "truncated .h5": (lambda tmp: truncated(MODELS / "tiny2_float.h5", tmp / "t.h5"), "cannot load Keras model"),
    "truncated .keras": (lambda tmp: truncated(MODELS / "digits_conv1d.keras", tmp / "t.keras"), "not a complete zip"),
    "truncated .onnx": (None, "not a valid ONNX file"),  # built from a real fused file below
    "zip that is no Keras archive": (zip_without_model, "cannot load Keras model"),
    "unsupported layer": (custom_layer_model, "is of class 'Doubler', not a Keras or QKeras class"),
    "weights-only .h5": (weights_only, "holds weights only, not a model"),
    "dynamic spatial keras": (dynamic_spatial_keras, "unknown dimensions"),
    "dynamic spatial onnx": (dynamic_spatial_onnx, "only the batch dimension may be dynamic"),
    "onnx missing initializer": (missing_initializer_onnx, "invalid ONNX model"),
    "onnx with a cycle": (cyclic_onnx, "must be topologically sorted"),
}


def run_expecting_error(args: list[str], capsys, expected: str, code: int = 2) -> str:
    assert main(args) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("onnx-fuse: error: ") and expected in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_cleanly(case, tmp_path, capsys):
    make, expected = CASES[case]
    if case == "truncated .onnx":
        good = tmp_path / "good.onnx"
        assert main([str(MODELS / "digits_cnn.h5"), str(good), "--no-verify", "-q"]) == 0
        capsys.readouterr()
        make = lambda tmp: truncated(good, tmp / "t.onnx", keep=0.6)  # noqa: E731
    src = make(tmp_path)
    if case == "unsupported layer":
        # forget the registration, as a fresh process that never imported the layer's module would
        keras.saving.get_custom_objects().pop("test>Doubler")
    before = digest(src)
    out = tmp_path / "out" / "fused.onnx"
    out.parent.mkdir()
    run_expecting_error([str(src), str(out), "-q"], capsys, expected)
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert digest(src) == before


def test_output_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run_expecting_error([str(MODELS / "digits_cnn.h5"), str(blocker / "out.onnx")], capsys, "output directory does not exist")


def test_output_in_missing_directory_is_refused(tmp_path, capsys):
    run_expecting_error([str(MODELS / "digits_cnn.h5"), str(tmp_path / "no" / "o.onnx")], capsys, "does not exist")


def test_output_must_be_onnx(tmp_path, capsys):
    run_expecting_error([str(MODELS / "digits_cnn.h5"), str(tmp_path / "o.h5")], capsys, "must be an .onnx file")


def test_output_is_never_the_input(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(src), "--no-verify", "-q"]) == 0
    capsys.readouterr()
    before = digest(src)
    run_expecting_error([str(src), str(src)], capsys, "would overwrite the input")
    assert digest(src) == before


def test_test_data_of_the_wrong_shape_is_refused(tmp_path, capsys):
    data = tmp_path / "d.npy"
    np.save(data, np.zeros((3, 9, 9, 1), np.float32))
    out = tmp_path / "o.onnx"
    run_expecting_error([str(MODELS / "digits_cnn.h5"), str(out), "--data", str(data), "-q"], capsys, "needs (N, 8, 8, 1)")
    assert not out.exists()


def test_existing_output_is_replaced_atomically(tmp_path, capsys):
    out = tmp_path / "o.onnx"
    out.write_bytes(b"old")
    assert main([str(MODELS / "digits_cnn.h5"), str(out), "--no-verify", "-q"]) == 0
    assert out.read_bytes() != b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["o.onnx"]  # no temp file left behind


def test_models_dir_is_not_modified_by_a_run(tmp_path):
    copy = tmp_path / "digits_cnn.h5"
    shutil.copy(MODELS / "digits_cnn.h5", copy)
    before = digest(copy)
    assert main([str(copy), str(tmp_path / "o.onnx"), "-q"]) == 0
    assert digest(copy) == before
