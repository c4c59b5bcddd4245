"""Read the user's model file: a Keras model (.h5/.keras, or architecture .json + weights .h5, read with Keras 3 or
else tf-keras), an ONNX graph (.onnx) or a TFLite flatbuffer (.tflite), refusing anything else clearly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

from onnx_fuse import keras_loaders, qonnx_ops
from onnx_fuse.errors import InputError, first_line
from onnx_fuse.keras_allowlist import QKERAS_LAYERS, QKERAS_QUANTIZERS
from onnx_fuse.keras_files import JSON_SUFFIXES, check_keras_archive, check_model_h5, read_architecture, weights_for
from onnx_fuse.keras_safety import check_config, read_model_config
from onnx_fuse.preflight import ONNX_SUFFIXES, TFLITE_SUFFIXES, check_input_path
from onnx_fuse.tflite import check_tflite


@dataclass
class Source:
    """A loaded model: the Keras model when the input was Keras, else the ONNX graph as read."""

    path: Path
    keras_model: Any | None = None
    onnx_model: onnx.ModelProto | None = None
    loader: str = "onnx"  # the library that read the file: "keras 3", "tf-keras 2.x", "qkeras", "onnx" or "tflite"
    note: str | None = None  # for the summary: the weights file used, why Keras 3 did not read the file

    @property
    def kind(self) -> str:
        return "keras" if self.keras_model is not None else "tflite" if self.loader == "tflite" else "onnx"


def load(path: Path, weights: Path | None = None) -> Source:
    check_input_path(path)
    suffix = path.suffix.lower()
    if weights is not None and suffix not in JSON_SUFFIXES:
        raise InputError(f"--weights goes with an architecture .json, not with {path}")
    if suffix in ONNX_SUFFIXES:
        return Source(path, onnx_model=load_onnx(path))
    if suffix in TFLITE_SUFFIXES:
        check_tflite(path)  # converted in the export stage
        return Source(path, loader="tflite")
    if suffix in JSON_SUFFIXES:
        architecture = read_architecture(path)
        classes = check_config(architecture, path)  # before any deserializer: a model file is data
        weights = weights_for(path, weights)
        # the loader gets the very config that was checked, not the file's text again
        text = json.dumps(architecture)
        qkeras_classes = qkeras_classes_in(classes)
        if qkeras_classes:
            model = keras_loaders.load_qkeras_json(path, text, weights, qkeras_classes)
            return Source(path, keras_model=model, loader="qkeras", note=f"weights from {weights}")
        return keras_source(path, lambda keras: keras_loaders.load_json_model(keras, text, weights), weights)
    if suffix == ".keras":
        check_keras_archive(path)
    else:
        check_model_h5(path)
    classes = check_config(read_model_config(path), path)
    qkeras_classes = qkeras_classes_in(classes)
    if qkeras_classes:
        return Source(path, keras_model=keras_loaders.load_qkeras(path, qkeras_classes), loader="qkeras")
    return keras_source(path, lambda keras: keras_loaders.load_model_file(keras, path))


def qkeras_classes_in(classes: frozenset[str]) -> list[str]:
    """The QKeras layers and quantizers a checked config uses: such a file goes to qkeras-v3's loader."""
    return sorted(classes & (QKERAS_LAYERS | QKERAS_QUANTIZERS))


def keras_source(path: Path, read: Callable[[Any], Any], weights: Path | None = None) -> Source:
    model, loader, keras3_note = keras_loaders.load_keras(path, read)
    notes = [f"weights from {weights}" if weights is not None else None, keras3_note]
    return Source(path, keras_model=model, loader=loader, note="; ".join(n for n in notes if n) or None)


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-wrapped errors, ...
        raise InputError(f"not a valid ONNX file: {path} ({first_line(exc)})") from exc
    return checked_onnx(model, path)


def checked_onnx(model: onnx.ModelProto, name: Path | str) -> onnx.ModelProto:
    """A graph read from a file or handed over in memory, made runnable (QONNX: domain aliases, missing opset import,
    runnable Quant/Trunc functions; qonnx_ops.prepare works on a copy) and held to onnx's full checker."""
    if not model.graph.node:
        raise InputError(f"not a valid ONNX model: {name} (the graph has no nodes)")
    model = qonnx_ops.prepare(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise InputError(f"invalid ONNX model {name}: {first_line(exc)}") from exc
    return model
