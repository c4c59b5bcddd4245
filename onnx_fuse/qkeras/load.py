"""Recognise a QKeras model file cheaply (no TensorFlow import) and load it with qkeras-v3 (the `qkeras` extra)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from onnx_fuse.errors import InputError

# Layer and quantizer class names as QKeras writes them into a model config: bare in Keras 2 files, prefixed with
# the registration package ("qkeras>QConv2D") in files saved by Keras 3.
QKERAS_CLASS = re.compile(
    r'"class_name":\s*"(?:qkeras>)?(Q(Activation|AdaptiveActivation|Dense|Conv|DepthwiseConv|SeparableConv|BatchNormalization|'
    r"AveragePooling|GlobalAveragePooling|SimpleRNN|LSTM|GRU|Bidirectional|OctaveConv)\w*|quantized_\w+)\""
)
EXTRA_HINT = 'install the qkeras extra: pip install -e ".[qkeras]"'


def model_config_text(path: Path) -> str:
    """The model config JSON of a Keras .h5 / .keras file, or "" when there is none to read."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                return archive.read("config.json").decode("utf-8", "replace")
        import h5py

        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config", "")
        return config.decode("utf-8", "replace") if isinstance(config, bytes) else str(config)
    except (OSError, KeyError, zipfile.BadZipFile):
        return ""


def is_qkeras_file(path: Path) -> bool:
    return QKERAS_CLASS.search(model_config_text(path)) is not None


def qkeras_layer_names(path: Path) -> list[str]:
    """QKeras layer classes named in the file's config (for messages)."""
    text = model_config_text(path)
    return sorted({m.group(1) for m in QKERAS_CLASS.finditer(text) if m.group(1).startswith("Q")})


def load_qkeras(path: Path) -> Any:
    """Load a QKeras model; one InputError line when qkeras-v3 is missing or the file does not load."""
    from onnx_fuse.load import check_static_inputs, describe_keras_failure, native_stderr_silenced

    try:
        with native_stderr_silenced():
            from qkeras.utils import load_qmodel
    except ImportError as exc:
        raise InputError(f"{path} is a QKeras model ({', '.join(qkeras_layer_names(path)) or 'QKeras layers'}): "
                         f"{EXTRA_HINT}") from exc
    try:
        model = load_qmodel(str(path), compile=False)
    except Exception as exc:
        raise InputError(describe_keras_failure(path, exc)) from exc
    check_static_inputs(model)
    return model
