"""The notebook entry point: fuse a model held in memory (a Keras 3 / QKeras / tf-keras model object, an
onnx.ModelProto) or a model file, and get the fused graph with the report the CLI prints, writing nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnx_fuse.errors import InputError
from onnx_fuse.keras_loaders import check_static_inputs
from onnx_fuse.load import Source, checked_onnx, load
from onnx_fuse.pipeline import Options, Result, process
from onnx_fuse.verify import Feeds


def fuse(
    model: Any,
    data: Feeds | np.ndarray | Path | str | None = None,
    samples: int = 16,
    seed: int = 0,
    verify: bool = True,
    weights: Path | str | None = None,
) -> Result:
    """Export (Keras), normalise, fuse every legal pair and check parity in onnxruntime, as `onnx-fuse` does.

    model: a keras.Model (Keras 3, QKeras, tf-keras), an onnx.ModelProto (never changed) or a path to a model file
    (checked as the CLI checks it: a Keras file's architecture before any deserializer runs).
    data: real inputs for the parity checks: an array (one-input model), a dict of arrays by input name, or a
    .npy/.npz path; `samples` seeded random inputs are added. Returns the pipeline's Result: `.model` is the fused
    ModelProto, `.fusion`, `.parity` the numbers, `.summary()` the CLI's text.
    """
    if samples < 1 or seed < 0:
        raise InputError("samples must be at least 1 and seed 0 or more")
    data = Path(data) if isinstance(data, str) else data
    options = Options(verify=verify, samples=samples, seed=seed, data=data)
    return process(source_of(model, Path(weights) if weights is not None else None), options)


def source_of(model: Any, weights: Path | None) -> Source:
    if isinstance(model, (str, Path)):
        return load(Path(model), weights)  # it checks the path as the CLI's preflight does
    if weights is not None:
        raise InputError("weights go with an architecture .json path, not with a model object")
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # prepare() edits the graph: the caller's object stays as it was
        return Source(f"<onnx.ModelProto '{model.graph.name}'>", onnx_model=checked_onnx(copy, "(in memory)"))
    # a Keras model object means Keras is imported already: look it up, never import it for this check
    model_classes = {name: sys.modules[name].Model for name in ("keras", "tf_keras") if name in sys.modules}
    library = next((name for name, cls in model_classes.items() if isinstance(model, cls)), None)
    if library is None:
        raise InputError(f"cannot fuse a {type(model).__name__}: give a keras.Model, an onnx.ModelProto or a path")
    check_static_inputs(model)
    qkeras = any(type(layer).__module__.startswith("qkeras") for layer in model.layers)
    loader = "qkeras" if qkeras else "tf-keras" if library == "tf_keras" else "keras 3"
    return Source(f"<keras model '{model.name}'>", keras_model=model, loader=loader)
