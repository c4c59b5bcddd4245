"""The Keras deserializers (Keras 3, tf-keras, qkeras-v3), each called in safe mode, on a file whose architecture
onnx_fuse/keras_safety.py has already checked: the one place a Keras file becomes a model."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.keras_files import saved_by_keras2
from onnx_fuse.keras_safety import safe_mode

log = logging.getLogger(__name__)

QKERAS_EXTRA_HINT = 'install the qkeras extra: pip install -e ".[qkeras]"'


def load_model_file(keras: Any, path: Path) -> Any:
    with safe_mode(keras):
        return keras.models.load_model(path, compile=False, safe_mode=True)


def load_json_model(keras: Any, architecture: str, weights: Path) -> Any:
    with safe_mode(keras):
        model = keras.models.model_from_json(architecture)
    model.load_weights(str(weights))
    return model


def load_keras(path: Path, read: Callable[[Any], Any]) -> tuple[Any, str, str | None]:
    """`read(keras_module)` with Keras 3, else with tf-keras: Keras 3 cannot deserialize many Keras-2-era
    configs (batch_input_shape, `groups` on Conv2D, SeparableConv2D's kwargs, ...) that tf-keras still reads.
    Returns the model, the loader's name and, when tf-keras read it, why Keras 3 did not."""
    with native_stderr_silenced():
        import keras  # deferred: TensorFlow takes seconds to import and .onnx inputs never need it

    try:
        model, loader, note = read(keras), "keras 3", None
    except Exception as keras3_exc:
        import tf_keras

        try:
            model = read(tf_keras)
        except Exception as tf_keras_exc:
            # name the cause given by the Keras that wrote the file
            cause = tf_keras_exc if saved_by_keras2(path) else keras3_exc
            raise InputError(describe_keras_failure(path, cause)) from cause
        loader, note = f"tf-keras {tf_keras.__version__}", f"Keras 3 cannot read it: {keras_cause(keras3_exc)}"
    log.debug("loaded Keras model %r with %d layers (%s)", model.name, len(model.layers), loader)
    check_static_inputs(model)
    return model, loader, note


def qkeras_utils(path: Path, qkeras_classes: list[str]) -> tuple[Any, Any]:
    """Keras and qkeras-v3's utils module; one InputError line naming the extra when qkeras-v3 is missing."""
    try:
        with native_stderr_silenced():
            import keras

            # by module path: qkeras' package attribute `utils` is keras.utils (its __init__ rebinds the name)
            utils = importlib.import_module("qkeras.utils")
    except ImportError as exc:
        raise InputError(f"{path} is a QKeras model ({', '.join(qkeras_classes)}): {QKERAS_EXTRA_HINT}") from exc
    return keras, utils


def load_qkeras(path: Path, qkeras_classes: list[str]) -> Any:
    """Load a QKeras model; one InputError line when qkeras-v3 is missing or the file does not load."""
    keras, utils = qkeras_utils(path, qkeras_classes)
    try:
        with safe_mode(keras):  # load_qmodel passes no safe_mode: Keras 3's default, forced on here
            model = utils.load_qmodel(str(path), compile=False)
    except Exception as exc:
        raise InputError(describe_keras_failure(path, exc)) from exc
    check_static_inputs(model)
    return model


def load_qkeras_json(path: Path, architecture: str, weights: Path, qkeras_classes: list[str]) -> Any:
    """A QKeras architecture JSON + weights .h5 (hls4ml's KerasJson + KerasH5), built by qkeras-v3; one InputError
    line when qkeras-v3 is missing or the files do not load.

    Keras 3's model_from_json reads only Keras 3's own serialization (a "module" next to each class name): a JSON
    that Keras 2 / QKeras wrote (every file hls4ml's examples hold) fails there with "Could not locate class
    'Functional'". Keras 3 reads that config only from a legacy .h5, where it sits as the `model_config` attribute
    beside the `model_weights` group that Keras 2's save_weights wrote at the root of the weights file. So such a
    pair is put together as that .h5 (a temporary file) and loaded with qkeras-v3's load_qmodel, exactly as a
    QKeras .h5 is."""
    keras, utils = qkeras_utils(path, qkeras_classes)
    try:
        if "module" in json.loads(architecture):  # Keras 3's serialization
            with safe_mode(keras):  # quantized_model_from_json passes no safe_mode: Keras 3's default, forced on
                model = utils.quantized_model_from_json(architecture)
            model.load_weights(str(weights))
        else:
            with tempfile.TemporaryDirectory(prefix="onnx_fuse_qkeras_") as tmp:
                legacy = Path(tmp) / "model.h5"
                legacy_h5(architecture, weights, legacy)
                with safe_mode(keras):  # load_qmodel passes no safe_mode: Keras 3's default, forced on here
                    model = utils.load_qmodel(str(legacy), compile=False)
    except Exception as exc:
        raise InputError(f"cannot load QKeras model {path} with weights {weights}: {keras_cause(exc)}") from exc
    check_static_inputs(model)
    return model


def legacy_h5(architecture: str, weights: Path, out: Path) -> None:
    """A Keras-2 model .h5 made of an architecture JSON and a save_weights file (or a whole model .h5's weights)."""
    import h5py

    with h5py.File(weights, "r") as source, h5py.File(out, "w") as target:
        group = source["model_weights"] if "model_weights" in source else source
        target.attrs["model_config"] = architecture
        for key in ("keras_version", "backend"):
            if key in group.attrs:
                target.attrs[key] = group.attrs[key]
        weights_group = target.create_group("model_weights")
        for key, value in group.attrs.items():
            weights_group.attrs[key] = value
        for name in group:
            source.copy(group[name], weights_group, name=name)


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
    return f"cannot load Keras model {path} (neither Keras 3 nor tf-keras reads it): {keras_cause(exc)}"


def check_static_inputs(model: Any) -> None:
    """hls4ml builds fixed-size hardware: every input dimension but the batch must be known."""
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if any(dim is None for dim in shape[1:]):
            raise InputError(
                f"input '{tensor.name}' has unknown dimensions {shape}: give the Keras Input a fixed shape"
            )
