"""Output-path checks and atomic writes: a failed run leaves no partial file and never touches the input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from onnx_fuse.errors import InputError


def check_output_path(input_path: Path, output_path: Path) -> None:
    if output_path.suffix.lower() != ".onnx":
        raise InputError(f"output must be an .onnx file: {output_path}")
    if output_path.is_dir():
        raise InputError(f"output is a directory: {output_path}")
    if input_path.exists() and output_path.exists() and output_path.samefile(input_path):
        raise InputError(f"output would overwrite the input: {output_path}")
    parent = output_path.parent
    if not parent.is_dir():
        raise InputError(f"output directory does not exist: {parent}")
    try:  # os.access lies for root and on some mounts: try for real
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"output directory is not writable: {parent} ({exc.strerror})") from exc


def write_atomic(model: onnx.ModelProto, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(model.SerializeToString())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
