"""Read the user's model file: a Keras model (.h5/.keras) or an ONNX graph (.onnx), refusing anything else clearly."""

from __future__ import annotations

import logging
import os
import re
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import onnx

from onnx_fuse import qonnx_ops
from onnx_fuse.errors import InputError

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
ONNX_SUFFIXES = (".onnx",)


@dataclass
class Source:
    """A loaded model: the Keras model when the input was Keras, else the ONNX graph as read."""

    path: Path
    keras_model: Any | None = None
    onnx_model: onnx.ModelProto | None = None

    @property
    def kind(self) -> str:
        return "keras" if self.keras_model is not None else "onnx"


def check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a model file: {path}")
    if path.suffix.lower() not in KERAS_SUFFIXES + ONNX_SUFFIXES:
        raise InputError(f"unsupported file type '{path.suffix}' ({path}): expected .h5, .keras or .onnx")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input file is empty: {path}")


def load(path: Path) -> Source:
    check_input_path(path)
    if path.suffix.lower() in ONNX_SUFFIXES:
        return Source(path, onnx_model=load_onnx(path))
    return Source(path, keras_model=load_keras(path))


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


def load_keras(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise InputError(f"not a Keras .keras archive (not a complete zip file): {path}")
    if suffix in (".h5", ".hdf5"):
        import h5py

        if not h5py.is_hdf5(path):
            raise InputError(f"not an HDF5 file: {path}")
    with native_stderr_silenced():
        import keras  # deferred: TensorFlow takes seconds to import and .onnx inputs never need it

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise InputError(describe_keras_failure(path, exc)) from exc
    log.debug("loaded Keras model %r with %d layers", model.name, len(model.layers))
    check_static_inputs(model)
    return model


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


def describe_keras_failure(path: Path, exc: Exception) -> str:
    text = str(exc)
    unknown = re.search(r"Unknown layer: '?(\w+)'?", text) or re.search(r"Could not locate class '(\w+)'", text)
    if unknown:
        return (
            f"unsupported layer {unknown.group(1)} in {path}: Keras cannot build it "
            "(custom layers such as QKeras' must be rebuilt as plain Keras layers first)"
        )
    if "No model config found" in text or "no model config" in text.lower():
        return f"{path} holds weights only, not a model (save it with model.save())"
    return f"cannot load Keras model {path}: {first_line(exc)}"


def check_static_inputs(model: Any) -> None:
    """hls4ml builds fixed-size hardware: every input dimension but the batch must be known."""
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if any(dim is None for dim in shape[1:]):
            raise InputError(
                f"input '{tensor.name}' has unknown dimensions {shape}: give the Keras Input a fixed shape"
            )


def first_line(exc: BaseException) -> str:
    """A library's message folded into one line: the CLI promises exactly one error line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
