"""Numerical parity in onnxruntime: reference (Keras or the input ONNX) vs normalised, and unfused vs fused."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort

from onnx_fuse.errors import InputError
from onnx_fuse.load import first_line

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
# float32 graphs computed in another order (Keras vs onnxruntime, BatchNorm folded by onnxslim).
REFERENCE_ATOL = 1e-4
REFERENCE_RTOL = 1e-4


@dataclass
class Parity:
    name: str
    samples: int
    max_abs_err: float
    atol: float
    rtol: float
    ok: bool

    def as_dict(self) -> dict:
        return asdict(self)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session with every graph optimisation off: ORT would otherwise re-fuse Conv+Relu itself (~2e-6)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    # One thread per run: batch-1 tensors are too small for intra-op threads to pay, and their spin-waiting made
    # verify 5x slower than its CPU time on a busy machine. run_onnx spreads the samples over the cores instead.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, feeds: Feeds) -> list[np.ndarray]:
    """Run one sample at a time (the normalised graph has batch 1) and stack the results.

    One session serves every sample, run from one thread per core: InferenceSession.run is thread-safe and
    releases the GIL, and each run is single-threaded, so the numbers do not depend on the scheduling.
    """
    sess = session(model)
    count = len(next(iter(feeds.values())))

    def one(i: int) -> list[np.ndarray]:
        return sess.run(None, {k: v[i : i + 1] for k, v in feeds.items()})

    with ThreadPoolExecutor(max_workers=max(1, min(count, os.cpu_count() or 1))) as pool:
        rows = list(pool.map(one, range(count)))
    return [np.concatenate([row[j] for row in rows]) for j in range(len(rows[0]))]


def keras_runner(model: Any) -> Callable[[Feeds], list[np.ndarray]]:
    def run(feeds: Feeds) -> list[np.ndarray]:
        import tensorflow as tf

        arrays = list(feeds.values())
        outputs = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        return [np.asarray(t) for t in tf.nest.flatten(outputs)]

    return run


def input_specs(model: onnx.ModelProto) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    initializers = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        specs.append(
            (value.name, tuple(d.dim_value for d in tensor.shape.dim), onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        )
    return specs


def random_feeds(model: onnx.ModelProto, samples: int, seed: int) -> Feeds:
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal((samples, *shape[1:])).astype(dtype) for name, shape, dtype in input_specs(model)
    }


def load_data(path: Path, model: onnx.ModelProto) -> Feeds:
    """Real inputs from .npy (single-input models) or .npz (arrays keyed by input name, or `x`)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read test data {path}: {first_line(exc)}") from exc
    arrays = {"x": loaded} if isinstance(loaded, np.ndarray) else dict(loaded)
    specs = input_specs(model)
    feeds = {}
    for name, shape, dtype in specs:
        key = name if name in arrays else ("x" if len(specs) == 1 and "x" in arrays else None)
        if key is None:
            raise InputError(f"test data {path} has no array for input '{name}' (keys: {', '.join(arrays)})")
        data = arrays[key]
        if tuple(data.shape[1:]) != tuple(shape[1:]):
            raise InputError(
                f"test data '{key}' has shape {data.shape}, input '{name}' needs (N, {', '.join(map(str, shape[1:]))})"
            )
        feeds[name] = data.astype(dtype)
    return feeds


def compare(name: str, expected: list[np.ndarray], actual: list[np.ndarray], atol: float, rtol: float) -> Parity:
    if len(expected) != len(actual) or any(e.shape != a.shape for e, a in zip(expected, actual)):
        shapes = [e.shape for e in expected], [a.shape for a in actual]
        log.debug("%s: output shapes differ: %s vs %s", name, *shapes)
        return Parity(name, 0, float("inf"), atol, rtol, False)
    err = max(float(np.max(np.abs(e.astype(np.float64) - a))) if e.size else 0.0 for e, a in zip(expected, actual))
    ok = all(np.all(np.abs(e.astype(np.float64) - a) <= atol + rtol * np.abs(e)) for e, a in zip(expected, actual))
    samples = len(expected[0]) if expected else 0
    log.debug("%s: max abs err %.3g over %d samples", name, err, samples)
    return Parity(name, samples, err, atol, rtol, bool(ok))


def check_parity(
    reference: Callable[[Feeds], list[np.ndarray]],
    reference_name: str,
    normalised: onnx.ModelProto,
    fused: onnx.ModelProto,
    feeds: Feeds,
) -> list[Parity]:
    unfused_out = run_onnx(normalised, feeds)
    return [
        compare(f"{reference_name} vs onnx", reference(feeds), unfused_out, REFERENCE_ATOL, REFERENCE_RTOL),
        # Same kernels in the same order at ORT_DISABLE_ALL: fusion must not change a single bit.
        compare("onnx vs fused", unfused_out, run_onnx(fused, feeds), 0.0, 0.0),
    ]


def make_feeds(model: onnx.ModelProto, samples: int, seed: int, data: Path | None) -> Feeds:
    feeds = random_feeds(model, samples, seed)
    if data is not None:
        real = load_data(data, model)
        feeds = {name: np.concatenate([real[name], feeds[name]]) for name in feeds}
    return feeds
