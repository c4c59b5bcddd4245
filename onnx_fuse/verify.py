"""Numerical parity in onnxruntime: reference (Keras or the input ONNX) vs normalised, and unfused vs fused."""

from __future__ import annotations

import logging
import math
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.regular_file import open_regular

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
# float32 graphs computed in another order (Keras vs onnxruntime, BatchNorm folded by onnxslim).
REFERENCE_ATOL = 1e-4
REFERENCE_RTOL = 1e-4
# Memory the parity inputs and outputs may take (feeds drawn as float64 then cast, outputs held three times:
# reference, unfused, fused). Beyond it a run would swap for minutes or die in a MemoryError.
MEMORY_BUDGET = 2 << 30


@dataclass
class Parity:
    name: str
    samples: int
    max_abs_err: float
    atol: float
    rtol: float
    ok: bool
    nonfinite: int = 0  # output values that are NaN or +-inf (equal when both sides have the same one there)
    argmax_agree: int | None = None  # samples whose top-1 class agrees, for a single (N, classes) output

    def as_dict(self) -> dict:
        return asdict(self)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session with every graph optimisation off: ORT would otherwise re-fuse Conv+Relu itself (~2e-6)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # fatal only: a failed run is our one error line, not ORT's coloured log
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
    return run_session(session(model), feeds)


def run_session(sess: ort.InferenceSession, feeds: Feeds) -> list[np.ndarray]:
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


# Random inputs of a quantized model (QKeras) are N(0, 1) rounded to this grid and held within +-GRID_RANGE: at most
# 11 significant bits. A layer reading them with power-of-2-scaled quantized weights of b bits (its bias on a grid as
# coarse) computes every partial sum exactly in float32 when 11 + (b - 1) + ceil(log2(fan_in + 1)) <= 24 (8-bit
# weights: fan-in up to 63; beyond, exact while the partial sums stay below 2**24 grid units), and the layers after
# it read quantized activations, again on a grid. Exact sums do not depend on the summation order, so QKeras
# (TensorFlow's kernels) and onnxruntime hand every quantizer the same value and round it the same way, exact ties
# included (half to even on both sides). On arbitrary floats the two float32 sums differ by an ulp or so; a quantizer
# input within that of a rounding boundary then rounds one step apart, and the step propagates through every later
# layer (resnet_v1_eembc_quantized_tiny's logits moved by 0.0083 on N(0, 1) inputs), so no output tolerance covers
# it. Float arithmetic after the last quantizer differs by float32 rounding only (REFERENCE_ATOL, REFERENCE_RTOL).
GRID_STEP = 2.0**-8
GRID_RANGE = 8.0


def random_feeds(model: onnx.ModelProto, samples: int, seed: int, on_grid: bool = False) -> Feeds:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, dtype in input_specs(model):
        values = rng.standard_normal((samples, *shape[1:]))
        if on_grid and dtype.kind == "f":
            values = np.clip(np.round(values / GRID_STEP) * GRID_STEP, -GRID_RANGE, GRID_RANGE - GRID_STEP)
        feeds[name] = values.astype(dtype)
    return feeds


def off_grid_note(feeds: Feeds) -> str:
    """For a failed QKeras check: how many inputs hold values off GRID_STEP's grid (see above), or nothing."""
    off = sum(
        int(np.count_nonzero(np.any((np.asarray(v, np.float64) / GRID_STEP % 1 != 0).reshape(len(v), -1), axis=1)))
        for v in feeds.values()
    )
    if not off:
        return ""
    count = len(next(iter(feeds.values())))
    return (
        f" on {count} inputs, {off} of them off the 2^-8 grid: QKeras' float32 sums in TensorFlow's order and "
        "onnxruntime's can round one quantizer step apart there; --data on a fixed-point grid is compared exactly"
    )


def budget_bytes(model: onnx.ModelProto, count: int) -> int:
    per_input = sum(math.prod(shape[1:]) * (8 + dtype.itemsize) for _, shape, dtype in input_specs(model))
    per_output = 0
    for value in model.graph.output:
        tensor = value.type.tensor_type
        if tensor.elem_type:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
            per_output += 3 * math.prod(d.dim_value for d in tensor.shape.dim[1:]) * itemsize
    return count * (per_input + per_output)


def check_budget(model: onnx.ModelProto, count: int) -> None:
    need = budget_bytes(model, count)
    if need > MEMORY_BUDGET:
        raise InputError(
            f"the parity checks on {count} inputs would need {need / 2**30:.3g} GiB, over the memory budget of "
            f"{MEMORY_BUDGET / 2**30:g} GiB: lower --samples, pass fewer --data rows, or check a smaller model"
        )


def check_dtype(key: str, dtype: np.dtype, path: Path | str) -> None:
    # bool, integers and floats cast exactly enough; complex, datetime, strings, objects and records would be
    # cast silently (or not at all) into something the user never meant.
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise InputError(f"test data '{key}' in {path} has dtype {dtype}: only bool, integer and float arrays")


def array_header(handle, key: str, path: Path) -> tuple[int, ...]:
    """The shape in an .npy header, its dtype checked, before any data is read (a header can declare terabytes)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(handle)
        if version not in readers:  # 3.0 exists only for structured dtypes with non-ASCII field names
            raise ValueError(f".npy format version {version[0]}.{version[1]}")
        shape, _, dtype = readers[version](handle)
    except Exception as exc:
        raise InputError(f"test data '{key}' in {path} is not a readable .npy array: {first_line(exc)}") from exc
    check_dtype(key, dtype, path)
    return shape


def cast_exactly(data: np.ndarray, dtype: np.dtype, key: str, path: Path | str) -> np.ndarray:
    """data as the graph's input dtype; refuse values the cast would change (a float over float32's range becomes inf,
    0.5 fed to an integer input becomes 0)."""
    out = data.astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        lost = np.isinf(out) & np.isfinite(data) if dtype.kind == "f" else out != data
    if np.any(lost):
        raise InputError(f"test data '{key}' in {path} has values that {dtype} cannot hold, e.g. {data[lost][0]}")
    return out


def load_data(path: Path, model: onnx.ModelProto, extra_samples: int = 0) -> Feeds:
    """Real inputs from .npy (single-input models) or .npz (arrays keyed by input name, or `x`).

    Each needed array's header (dtype, shape, size against the memory budget with `extra_samples` random inputs on
    top) is checked before its data is read; .npz members that no input needs are never read.
    """
    specs = input_specs(model)
    with open_regular(path, "test data") as handle:
        is_npz = zipfile.is_zipfile(handle)
        handle.seek(0)
        archive = np.load(handle, allow_pickle=False) if is_npz else None
        keys = archive.files if archive is not None else ["x"]
        chosen, rows = {}, set()
        for name, shape, _ in specs:
            key = name if name in keys else ("x" if len(specs) == 1 and "x" in keys else None)
            if key is None:
                raise InputError(f"test data {path} has no array for input '{name}' (keys: {', '.join(keys)})")
            found = member_header(archive, key, path) if archive is not None else array_header(handle, key, path)
            if len(found) != len(shape) or tuple(found[1:]) != tuple(shape[1:]):
                raise InputError(
                    f"test data '{key}' has shape {found}, input '{name}' needs (N, {', '.join(map(str, shape[1:]))})"
                )
            chosen[name], rows = key, rows | {found[0]}
        if len(rows) > 1:
            raise InputError(f"test data {path} has different numbers of rows per input: {sorted(rows)}")
        check_budget(model, max(rows, default=0) + extra_samples)
        feeds = {}
        for name, _, dtype in specs:
            key = chosen[name]
            handle.seek(0)
            try:
                data = archive[key] if archive is not None else np.load(handle, allow_pickle=False)
            except Exception as exc:
                raise InputError(f"cannot read test data '{key}' from {path}: {first_line(exc)}") from exc
            feeds[name] = cast_exactly(data, dtype, key, path)
        return feeds


def member_header(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> tuple[int, ...]:
    member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key  # NpzFile's keys drop ".npy"
    with archive.zip.open(member) as handle:
        return array_header(handle, key, path)


def compare(name: str, expected: list[np.ndarray], actual: list[np.ndarray], atol: float, rtol: float) -> Parity:
    if len(expected) != len(actual) or any(e.shape != a.shape for e, a in zip(expected, actual)):
        shapes = [e.shape for e in expected], [a.shape for a in actual]
        log.debug("%s: output shapes differ: %s vs %s", name, *shapes)
        return Parity(name, 0, float("inf"), atol, rtol, False)
    err, ok, nonfinite = 0.0, True, 0
    for e, a in zip(expected, actual):
        e, a = e.astype(np.float64), a.astype(np.float64)
        finite = np.isfinite(e) & np.isfinite(a)
        # The same NaN or inf on both sides is agreement (a graph that overflows, or NaN in --data, overflows the
        # same way fused); inf against a number, or +inf against -inf, is an infinite error.
        with np.errstate(invalid="ignore"):
            same = finite | (np.isnan(e) & np.isnan(a)) | (e == a)
        nonfinite += int(np.count_nonzero(~finite))
        if not np.all(same):
            err, ok = float("inf"), False
        diff = np.abs(e[finite] - a[finite])
        if diff.size:
            err = max(err, float(diff.max()))
            ok = ok and bool(np.all(diff <= atol + rtol * np.abs(e[finite])))
    samples = len(expected[0]) if expected else 0
    log.debug("%s: max abs err %.3g over %d samples, %d non-finite values", name, err, samples, nonfinite)
    agree = None
    if len(expected) == 1 and expected[0].ndim == 2 and expected[0].shape[1] > 1:
        agree = int(np.count_nonzero(expected[0].argmax(1) == actual[0].argmax(1)))
    return Parity(name, samples, err, atol, rtol, ok, nonfinite, agree)


def check_parity(
    reference: Callable[[Feeds], list[np.ndarray]],
    reference_name: str,
    normalised: onnx.ModelProto,
    fused: onnx.ModelProto,
    feeds: Feeds,
    reference_atol: float = REFERENCE_ATOL,
) -> list[Parity]:
    unfused_out = run_onnx(normalised, feeds)
    return [
        compare(f"{reference_name} vs onnx", reference(feeds), unfused_out, reference_atol, REFERENCE_RTOL),
        # Same kernels in the same order at ORT_DISABLE_ALL: fusion must not change a single bit.
        compare("onnx vs fused", unfused_out, run_onnx(fused, feeds), 0.0, 0.0),
    ]


def make_feeds(
    model: onnx.ModelProto, samples: int, seed: int, data: Path | Feeds | np.ndarray | None, on_grid: bool = False
) -> Feeds:
    """The given inputs followed by `samples` seeded random ones (on GRID_STEP's grid with on_grid)."""
    if data is None:
        real = None
    elif isinstance(data, Path):
        real = load_data(data, model, extra_samples=samples)
    else:
        real = given_arrays(data, model, extra_samples=samples)
    if real is None:
        check_budget(model, samples)
    feeds = random_feeds(model, samples, seed, on_grid)
    if real is not None:
        feeds = {name: np.concatenate([real[name], feeds[name]]) for name in feeds}
    return feeds


def given_arrays(data: Feeds | np.ndarray, model: onnx.ModelProto, extra_samples: int = 0) -> Feeds:
    """Arrays handed over in memory (onnx_fuse.fuse), held to the rules a --data file is: one per input (keyed by
    input name, or a bare array for a one-input model), shape (N, ...) of the input, a dtype the input can take."""
    specs = input_specs(model)
    arrays = data if isinstance(data, dict) else {specs[0][0]: data} if len(specs) == 1 else None
    if arrays is None:
        raise InputError(f"the model has {len(specs)} inputs: give data as a dict keyed by input name")
    feeds = {}
    for name, shape, dtype in specs:
        if name not in arrays:
            raise InputError(f"data has no array for input '{name}' (keys: {', '.join(map(str, arrays))})")
        array = np.asarray(arrays[name])
        if array.ndim != len(shape) or tuple(array.shape[1:]) != tuple(shape[1:]):
            raise InputError(
                f"data for '{name}' has shape {array.shape}, the input needs (N, {', '.join(map(str, shape[1:]))})"
            )
        check_dtype(name, array.dtype, "the data given")
        feeds[name] = cast_exactly(array, dtype, name, "the data given")
    if len({len(a) for a in feeds.values()}) > 1:
        raise InputError("data has different numbers of rows per input")
    check_budget(model, len(next(iter(feeds.values()))) + extra_samples)
    return feeds
