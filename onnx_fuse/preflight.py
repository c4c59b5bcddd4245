"""Checks of the files a run names (model, output, --data) that need nothing heavy: no onnx, onnxruntime or
TensorFlow import (together 2-10 s), so a mistyped path is answered at once, by the CLI before it imports them."""

from __future__ import annotations

import os
from pathlib import Path

from onnx_fuse.errors import InputError
from onnx_fuse.keras_files import JSON_SUFFIXES
from onnx_fuse.output import check_output_path
from onnx_fuse.regular_file import open_regular

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
ONNX_SUFFIXES = (".onnx",)
TFLITE_SUFFIXES = (".tflite",)


def check_run_files(input_path: Path, output_path: Path, data: Path | None) -> None:
    check_input_path(input_path)
    check_output_path(input_path, output_path)
    if data is not None:
        check_data_file(data)


def check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a model file: {path}")
    if path.suffix.lower() not in KERAS_SUFFIXES + JSON_SUFFIXES + ONNX_SUFFIXES + TFLITE_SUFFIXES:
        raise InputError(
            f"unsupported file type '{path.suffix}' ({path}): expected .h5, .keras, .json (with its weights), .onnx "
            "or .tflite"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input file is empty: {path}")


def check_data_file(path: Path) -> None:
    """A readable regular .npy or .npz file (its arrays are checked against the model's inputs later)."""
    with open_regular(path, "test data") as handle:
        magic = handle.read(6)
    if not magic.startswith((b"\x93NUMPY", b"PK")):
        raise InputError(f"test data {path} is neither a .npy nor a .npz file (numpy.save / numpy.savez write them)")
