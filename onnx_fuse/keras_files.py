"""Cheap checks of Keras files before TensorFlow loads (its start-up takes 5-50 s): what kind of file it is, and
which architecture JSON goes with which weights file (hls4ml's KerasJson + KerasH5 convention)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.keras_safety import unique_keys

JSON_SUFFIXES = (".json",)
WEIGHTS_SUFFIXES = (".h5", ".hdf5")


def hdf5_holds_model(path: Path) -> bool:
    """True for a whole saved model, False for weights only: Keras (2 and 3) writes the architecture as the
    file's `model_config` attribute, and save_weights never does."""
    import h5py

    if not h5py.is_hdf5(path):
        raise InputError(f"not an HDF5 file: {path}")
    try:
        with h5py.File(path, "r") as handle:
            return "model_config" in handle.attrs
    except OSError as exc:
        raise InputError(f"cannot load Keras model {path}: truncated or corrupt HDF5 file ({first_line(exc)})") from exc


def saved_by_keras2(path: Path) -> bool:
    """The file records the Keras that wrote it (`keras_version`: HDF5 attribute, JSON key, .keras metadata)."""
    import h5py

    try:
        if path.suffix.lower() in JSON_SUFFIXES:
            version = json.loads(path.read_text()).get("keras_version", "")
        elif path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                version = json.loads(archive.read("metadata.json")).get("keras_version", "")
        else:
            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version", "")
    except (OSError, KeyError, ValueError):
        return False
    version = version.decode() if isinstance(version, bytes) else str(version)
    return version.startswith("2.")


def check_model_h5(path: Path) -> None:
    if not hdf5_holds_model(path):
        stem = path.stem.removesuffix("_weights").removesuffix(".weights")
        raise InputError(
            f"{path} holds weights only, not a model: give its architecture JSON with it "
            f"(onnx-fuse {path.with_name(stem + '.json')} OUT.onnx --weights {path})"
        )


def check_keras_archive(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise InputError(f"not a Keras .keras archive (not a complete zip file): {path}")
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise InputError(f"cannot load Keras model {path}: the archive has no config.json (not a .keras file)")


def read_architecture(path: Path) -> dict:
    """The config of a Keras `model.to_json()` file, checked to be one."""
    try:
        config = json.loads(path.read_text(errors="replace"), object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser's stack
        raise InputError(f"not a Keras architecture JSON: {path} ({first_line(exc)})") from exc
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise InputError(f"not a Keras architecture JSON (no class_name/config, as model.to_json() writes): {path}")
    return config


def weights_for(architecture: Path, weights: Path | None) -> Path:
    """The weights file of an architecture JSON: the one given, else X_weights.h5 next to X.json."""
    if weights is None:
        candidates = [architecture.with_name(f"{architecture.stem}_weights{s}") for s in WEIGHTS_SUFFIXES]
        weights = next((c for c in candidates if c.is_file()), None)
        if weights is None:
            raise InputError(
                f"{architecture} holds the architecture only: give its weights with --weights W.h5 "
                f"(none found at {candidates[0]})"
            )
    if not weights.is_file():
        raise InputError(f"weights file not found: {weights}")
    if weights.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise InputError(f"weights must be an HDF5 file (.h5, as save_weights writes): {weights}")
    hdf5_holds_model(weights)  # an HDF5 file, readable; a whole saved model carries its weights too
    return weights
