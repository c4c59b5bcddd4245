"""Read the user's model file: a Keras model (.h5/.keras, or architecture .json + weights .h5, read with Keras 3 or
else tf-keras) or an ONNX graph (.onnx), refusing anything else clearly."""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import onnx

from onnx_fuse import qonnx_ops
from onnx_fuse.errors import InputError, first_line
from onnx_fuse.keras_files import (
    JSON_SUFFIXES,
    check_keras_archive,
    check_model_h5,
    read_architecture,
    saved_by_keras2,
    weights_for,
)

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
ONNX_SUFFIXES = (".onnx",)


@dataclass
class Source:
    """A loaded model: the Keras model when the input was Keras, else the ONNX graph as read."""

    path: Path
    keras_model: Any | None = None
    onnx_model: onnx.ModelProto | None = None
    loader: str = "onnx"  # the library that read the file: "keras 3", "tf-keras 2.x", "qkeras" or "onnx"
    note: str | None = None  # for the summary: the weights file used, why Keras 3 did not read the file

    @property
    def kind(self) -> str:
        return "keras" if self.keras_model is not None else "onnx"


def check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a model file: {path}")
    if path.suffix.lower() not in KERAS_SUFFIXES + JSON_SUFFIXES + ONNX_SUFFIXES:
        raise InputError(
            f"unsupported file type '{path.suffix}' ({path}): expected .h5, .keras, .json (with its weights) or .onnx"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input file is empty: {path}")


def load(path: Path, weights: Path | None = None) -> Source:
    check_input_path(path)
    suffix = path.suffix.lower()
    if weights is not None and suffix not in JSON_SUFFIXES:
        raise InputError(f"--weights goes with an architecture .json, not with {path}")
    if suffix in ONNX_SUFFIXES:
        return Source(path, onnx_model=load_onnx(path))
    if suffix in JSON_SUFFIXES:
        architecture, weights = read_architecture(path), weights_for(path, weights)
        return load_keras(path, lambda keras: from_json(keras, architecture, weights), weights)
    if suffix == ".keras":
        check_keras_archive(path)
    else:
        check_model_h5(path)
    from onnx_fuse.qkeras.load import is_qkeras_file, load_qkeras  # it imports this module's helpers

    if is_qkeras_file(path):
        return Source(path, keras_model=load_qkeras(path), loader="qkeras")
    return load_keras(path, lambda keras: keras.models.load_model(path, compile=False))


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-wrapped errors, ...
        raise InputError(f"not a valid ONNX file: {path} ({first_line(exc)})") from exc
    if not model.graph.node:
        raise InputError(f"not a valid ONNX file: {path} (the graph has no nodes)")
    model = qonnx_ops.prepare(model)  # QONNX: domain aliases, missing opset import, runnable Quant/Trunc functions
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise InputError(f"invalid ONNX model {path}: {first_line(exc)}") from exc
    return model


def from_json(keras: Any, architecture: str, weights: Path) -> Any:
    model = keras.models.model_from_json(architecture)
    model.load_weights(str(weights))
    return model


def load_keras(path: Path, read: Callable[[Any], Any], weights: Path | None = None) -> Source:
    """`read(keras_module)` with Keras 3, else with tf-keras: Keras 3 cannot deserialize many Keras-2-era
    configs (batch_input_shape, `groups` on Conv2D, SeparableConv2D's kwargs, ...) that tf-keras still reads."""
    with native_stderr_silenced():
        import keras  # deferred: TensorFlow takes seconds to import and .onnx inputs never need it

    notes = [f"weights from {weights}"] if weights is not None else []
    try:
        model, loader = read(keras), "keras 3"
    except Exception as keras3_exc:
        import tf_keras

        try:
            model = read(tf_keras)
        except Exception as tf_keras_exc:
            # name the cause given by the Keras that wrote the file
            cause = tf_keras_exc if saved_by_keras2(path) else keras3_exc
            raise InputError(describe_keras_failure(path, cause)) from cause
        loader = f"tf-keras {tf_keras.__version__}"
        notes.append(f"Keras 3 cannot read it: {keras_cause(keras3_exc)}")
    log.debug("loaded Keras model %r with %d layers (%s)", model.name, len(model.layers), loader)
    check_static_inputs(model)
    return Source(path, keras_model=model, loader=loader, note="; ".join(notes) or None)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """TensorFlow's C++ libraries log on import (absl, before its log is initialised: "Could not find cuda drivers")
    straight to file descriptor 2, past TF_CPP_MIN_LOG_LEVEL; the CLI promises that only its own lines reach stderr."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_cause(exc: Exception) -> str:
    """Keras puts the cause after a dump of the whole layer config ("Exception encountered: ...") or before one
    ("Full object config: ..."): keep the cause, in one line."""
    cause = str(exc).rsplit("Exception encountered:", 1)[-1]
    return first_line(re.split(r"\s(?:Full (?:object )?config:|config=)", cause, maxsplit=1)[0])


def describe_keras_failure(path: Path, exc: Exception) -> str:
    text = str(exc)
    unknown = re.search(r"Unknown layer: '?(\w+)'?", text) or re.search(r"Could not locate class '(\w+)'", text)
    # Keras 3 cannot locate Keras 2's model classes either: that is an old file, not a custom layer
    if unknown and unknown.group(1) not in ("Sequential", "Functional", "Model"):
        return (
            f"unsupported layer {unknown.group(1)} in {path}: Keras cannot build it "
            "(custom layers such as QKeras' must be rebuilt as plain Keras layers first)"
        )
    return f"cannot load Keras model {path} (neither Keras 3 nor tf-keras reads it): {keras_cause(exc)}"


def check_static_inputs(model: Any) -> None:
    """hls4ml builds fixed-size hardware: every input dimension but the batch must be known."""
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if any(dim is None for dim in shape[1:]):
            raise InputError(
                f"input '{tensor.name}' has unknown dimensions {shape}: give the Keras Input a fixed shape"
            )

