"""A Keras model file is data: its architecture is read as JSON and checked here before any Keras deserializer sees
it, and refused when loading it could run code that came with the file.

Keras resolves every `class_name` of a config to a class or function and calls it; tf-keras 2.21's legacy HDF5
loader even unmarshals a Lambda layer's Python bytecode with no safe mode, and qkeras evaluates quantizer strings
("quantized_bits(8,0)") against its module's globals. So every object reference in the config, at any depth (nested
models, wrappers, initializers, regularizers, constraints, quantizers, Keras 1 list-style configs), must name a
class or function of Keras or QKeras that computes only on tensors. The loaders then run in safe mode as well
(`safe_mode`), a second line of defence."""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.keras_allowlist import KERAS_CLASSES, KERAS_FUNCTIONS, QKERAS_LAYERS, QKERAS_QUANTIZERS

# Classes whose config carries code or names code to load: Python bytecode or a function by module (Lambda), a
# SavedModel, a pickled torch module, a JAX/Flax function.
CODE_CLASSES = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
# tf-keras' TFOpLambda / SlicingOpLambda call the TensorFlow API function their config names: only namespaces of
# pure tensor math (a name such as "io.write_file" would write a file while the model is built).
TF_OP_NAMESPACES = ("math.", "nn.", "__operators__.", "image.", "linalg.")
TF_OP_NAMES = frozenset({
    "reshape", "transpose", "concat", "split", "squeeze", "expand_dims", "stack", "unstack", "clip_by_value", "cast",
    "identity", "pad", "tile", "gather", "where", "maximum", "minimum", "abs", "add", "multiply", "subtract", "divide",
    "matmul", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "shape", "slice", "strided_slice",
    "compat.v1.transpose", "compat.v1.squeeze", "compat.v1.gather",
})
# Keras 3's own markers for values (tensors, arrays, bytes, slices); `__lambda__` (bytecode) and `__typespec__` (a
# class looked up by module) are not among them.
DATA_MARKERS = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"})
MODULE_ROOTS = frozenset({"keras", "tf_keras", "qkeras"})
CLASSES = KERAS_CLASSES | QKERAS_LAYERS | QKERAS_QUANTIZERS
FUNCTIONS = KERAS_FUNCTIONS | QKERAS_QUANTIZERS
ADVICE = "nothing in the file was run; if you trust the model, rebuild it in code without that and save it again"


class Refused(Exception):
    """One object of the config that may not be deserialized, and why."""


def read_model_config(path: Path) -> Any:
    """The architecture of a Keras .h5 / .keras file as plain JSON data: the HDF5 `model_config` attribute or the
    zip's config.json, which the loaders read again. Duplicate keys are refused: loader and check see one config."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                text: Any = archive.read("config.json")
        else:
            import h5py

            with h5py.File(path, "r") as handle:
                text = handle.attrs.get("model_config")
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise ValueError("no model_config attribute holding JSON text")
        return json.loads(text, object_pairs_hook=unique_keys)
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read the model architecture of {path}: {first_line(exc)}") from exc


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a JSON object repeats a key ({sorted({k for k in keys if keys.count(k) > 1})})")
    return dict(pairs)


def check_config(config: Any, path: Path) -> frozenset[str]:
    """Refuse (InputError, one line naming the layer) the model config of `path` when it references anything but
    Keras and QKeras classes and functions that compute on tensors. Returns the class names it uses."""
    names = set()
    for layer, node in objects(config):
        try:
            names.add(check_object(node))
        except Refused as exc:
            raise InputError(f"refusing {path}: layer '{layer}' {exc}; {ADVICE}") from None
    return frozenset(names - {None})


def objects(config: Any) -> Iterator[tuple[str, Any]]:
    """Every dict and string of the config, depth first, with the name of the innermost layer around it. Iterative:
    a config nested deeper than the interpreter's stack is still walked."""
    stack: list[tuple[str, Any, str | None]] = [("(model)", config, None)]
    while stack:
        layer, node, key = stack.pop()
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and "trainable" in inner and isinstance(inner.get("name"), str):
                layer = inner["name"]  # a layer's config (Keras 1, 2 and 3) has both; a policy's or initializer's not
            yield layer, node
            stack.extend((layer, value, k) for k, value in node.items())
        elif isinstance(node, list):
            stack.extend((layer, value, key) for value in node)
        elif isinstance(node, str) and key is not None and evaluated_by_qkeras(key):
            yield layer, (key, node)


def evaluated_by_qkeras(key: str) -> bool:
    """qkeras' get_quantizer evaluates the strings of these keys ("quantized_relu(6,0)") by name lookup and call."""
    return key in ("activation", "recurrent_activation") or "quantizer" in key


def check_object(node: dict | tuple[str, str]) -> str | None:
    """The class name of one object of the config (None for a string or a dict that names none), or Refused."""
    if isinstance(node, tuple):
        return check_qkeras_string(*node)
    for key, value in node.items():
        if key.endswith("_type") and value == "lambda":
            raise Refused(f"holds Python bytecode ({key}: lambda)")
    if "class_name" not in node:
        return None
    class_name = node["class_name"]
    if not isinstance(class_name, str):
        raise Refused(f"has a class_name that is not a name: {str(class_name)[:60]!r}")
    package, _, bare = class_name.rpartition(">")
    if package not in ("", "qkeras"):
        raise Refused(f"is {class_name}, a class registered by a package other than Keras and QKeras")
    if bare == "__lambda__" or bare in CODE_CLASSES:
        raise Refused(f"is a {'Python lambda' if bare == '__lambda__' else bare}, whose config holds code that "
                      "would run on loading")
    if bare == "function":
        function = node.get("config")
        if function not in FUNCTIONS:
            raise Refused(f"references the function {str(function)[:60]!r}, not a Keras activation, loss or metric")
    elif bare in ("TFOpLambda", "SlicingOpLambda"):
        check_tf_op(node)
    elif bare not in CLASSES and bare not in DATA_MARKERS:
        raise Refused(f"is of class {bare!r}, not a Keras or QKeras class (a custom layer or object: its code "
                      "is not in the file, and onnx-fuse loads no code from elsewhere)")
    check_references(node, bare)
    return bare


def check_references(node: dict, bare: str) -> None:
    """Keras 3 imports `module` and looks up `registered_name` (Keras 2 configs have neither). It writes a Keras
    function as module "builtins", which it resolves only among its own activations, losses and metrics."""
    module = node.get("module")
    roots = MODULE_ROOTS | {"builtins"} if bare == "function" else MODULE_ROOTS
    if module is not None and (not isinstance(module, str) or module.split(".")[0] not in roots):
        raise Refused(f"references module {str(module)[:60]!r}, outside Keras and QKeras")
    registered = node.get("registered_name")
    allowed = (None, bare, node["class_name"], f"qkeras>{bare}")
    if registered not in allowed and not (bare == "function" and registered == node.get("config")):
        raise Refused(f"references the registered name {str(registered)[:60]!r}, not a Keras or QKeras class")


def check_tf_op(node: dict) -> None:
    config = node.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    if not isinstance(function, str) or not (function in TF_OP_NAMES or function.startswith(TF_OP_NAMESPACES)):
        raise Refused(f"calls the TensorFlow function {str(function)[:60]!r}, not a tensor operation")


def check_qkeras_string(key: str, text: str) -> None:
    if text.split("(", 1)[0].strip() not in FUNCTIONS:
        raise Refused(f"has {key} {text[:60]!r}, which QKeras would evaluate: not a Keras activation or QKeras "
                      "quantizer")


@contextmanager
def safe_mode(keras: ModuleType) -> Iterator[None]:
    """Keras' safe mode (no Python lambda deserialized) forced on for every deserializer call inside, including
    tf-keras' legacy HDF5 loader, which takes no `safe_mode` argument and leaves it off. Neither Keras 3 nor tf-keras
    exports the scope that sets it: this uses their `SafeModeScope` (same name and signature in both)."""
    serialization = importlib.import_module(f"{keras.__name__.split('.')[0]}.src.saving.serialization_lib")
    with serialization.SafeModeScope(True):
        yield
