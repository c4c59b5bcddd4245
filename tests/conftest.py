from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


def conv_init(name: str, out_ch: int, in_ch: int, k: int = 3, seed: int = 0) -> onnx.TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal((out_ch, in_ch, k, k)).astype(np.float32), name)


def vec_init(name: str, n: int, seed: int = 1) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(n).astype(np.float32), name)


def make_model(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    inputs: dict[str, list],
    outputs: dict[str, list | None],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


# Modules whose tests build hls4ml models (conversion, g++ compile, C-sim): `pytest -m "not hls and not slow"`
# leaves them out for a quick ONNX-only loop.
HLS_MODULES = {
    "test_hls_backend", "test_cli_hls", "test_resource_report", "test_activations_hls", "test_qonnx_hls",
    "test_mlperf_tiny", "test_torch_hls",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__ in HLS_MODULES:
            item.add_marker(pytest.mark.hls)


@pytest.fixture(scope="session")
def keras_graphs() -> Callable[[str], tuple[onnx.ModelProto, onnx.ModelProto, int]]:
    """(normalised unfused graph, fused graph, fused pairs) of a bundled Keras model, via onnx_fuse's own steps;
    each model is exported once per session."""
    from onnx_fuse.export import keras_to_onnx
    from onnx_fuse.fusion import fuse
    from onnx_fuse.load import load
    from onnx_fuse.normalise import normalise

    @functools.cache
    def make(name: str) -> tuple[onnx.ModelProto, onnx.ModelProto, int]:
        normalised, _ = normalise(keras_to_onnx(load(MODELS / name).keras_model))
        fused, report = fuse(normalised)
        return normalised, fused, report.pairs

    return make


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """hls_backend.run_csim shared by the whole session: keyed by model, inputs and every option (config, io_type,
    backend, fuse ...), so a project is converted, compiled and simulated once however many tests read it.
    Thread-safe: tests run fused and unfused side by side."""
    from hls_backend.csim import run_csim

    futures: dict[str, Future] = {}
    lock = threading.Lock()

    def run(model: onnx.ModelProto, x: np.ndarray, **options: Any):
        digest = hashlib.sha256(model.SerializeToString(deterministic=True))
        digest.update(repr((x.shape, x.dtype.str)).encode() + np.ascontiguousarray(x).tobytes())
        digest.update(json.dumps(options, sort_keys=True, default=str).encode())
        key = digest.hexdigest()
        with lock:
            owner = key not in futures
            if owner:
                futures[key] = Future()
        if owner:
            try:
                futures[key].set_result(run_csim(model, x, tmp_path_factory.mktemp("csim"), **options))
            except BaseException as exc:
                futures[key].set_exception(exc)
        return futures[key].result()

    return run
