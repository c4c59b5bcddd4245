"""The whole job, top-down: load -> export -> normalise -> fuse -> verify -> hls -> write."""

from __future__ import annotations

import gc
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from onnx_fuse.errors import SIGNALS, ParityError, library_failures_are_input_errors, raise_if_signalled
from onnx_fuse import qonnx_ops
from onnx_fuse.export import keras_to_onnx
from onnx_fuse.qkeras import qkeras_to_qonnx
from onnx_fuse.fusion import FuseReport, fuse
from hls_backend.hls_stage import HlsOptions, HlsResult, check_hls_out, run_hls
from onnx_fuse.load import Source, load
from onnx_fuse.normalise import PassReport, normalise
from onnx_fuse.input_runs import checked_reference
from onnx_fuse.output import write_atomic
from onnx_fuse.preflight import check_run_files
from onnx_fuse.tflite import output_steps, tflite_runner, tflite_to_onnx
from onnx_fuse.verify import REFERENCE_ATOL, Feeds, Parity, check_parity, keras_runner, make_feeds, off_grid_note

log = logging.getLogger("onnx_fuse")


@dataclass
class Options:
    verify: bool = True
    samples: int = 16
    seed: int = 0
    data: Path | Feeds | np.ndarray | None = None  # a .npy/.npz file, or arrays (per input name, or the one input's)
    weights: Path | None = None  # the weights .h5 of an architecture .json input
    hls: HlsOptions | None = None


@dataclass
class Result:
    input: Path | str  # the model file, or a description of the model object fuse() was given
    output: Path | None  # None: in memory only (onnx_fuse.fusion)
    source_kind: str
    loader: str  # the library that read the input: keras 3, tf-keras 2.x or onnx
    load_note: str | None
    passes: list[PassReport]
    fusion: FuseReport
    parity: list[Parity] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    hls: HlsResult | None = None
    model: onnx.ModelProto | None = field(default=None, repr=False)

    def summary(self) -> str:
        """The text `onnx-fuse` prints for this run."""
        from onnx_fuse.summary import summary

        return summary(self)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside a stage. onnx_ir and onnxslim hold a graph as hundreds of thousands of
    small objects, which each collection rescans: fuse took 181 instead of 118 us per node at 10,000 nodes, and the
    gap grows with the graph. Reference counting still frees everything; the cycles wait until the stage ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Stages:
    """Each stage logged, timed, its library failures turned into InputErrors, and a signal checked on both sides."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, what: str) -> Iterator[None]:
        raise_if_signalled()
        log.info("%s ...", what)
        start = time.perf_counter()
        # see library_failures_are_input_errors: where "bad graph" ends and "our bug" begins
        with library_failures_are_input_errors(name), gc_paused():
            yield
        raise_if_signalled()
        self.seconds[name] = time.perf_counter() - start


def run(input_path: Path, output_path: Path, options: Options | None = None) -> Result:
    """The CLI's job: a model file in, the fused ONNX file out (and the hls4ml projects with options.hls)."""
    options = options or Options()
    SIGNALS.committed = False  # a new run: nothing of it is in place yet
    check_run_files(input_path, output_path, options.data)
    if options.hls is not None:
        check_hls_out(options.hls, input_path, output_path)
    stage = Stages()
    with stage("load", f"loading {input_path}"):
        source = load(input_path, options.weights)
    result = process(source, options, stage)
    with stage("write", f"writing {output_path}"):
        write_atomic(result.model, output_path)
    result.output = output_path
    return result


def process(source: Source, options: Options, stage: Stages | None = None) -> Result:
    """A loaded model through export, normalise, fuse, verify (and hls): the fused graph in memory, nothing written
    but the hls4ml projects options.hls asks for."""
    stage = stage or Stages()
    with stage("export", EXPORTING[source.loader if source.loader in EXPORTING else source.kind]):
        exported = export(source)
        # an ONNX input must run in onnxruntime as given before any pass touches it; its session is the reference
        reference = checked_reference(exported, source.path) if source.kind == "onnx" and options.verify else None
    with stage("normalise", "normalising the graph"):
        normalised, passes = normalise(exported)
    with stage("fuse", "fusing Conv/Dense -> activation pairs"):
        fused, fusion = fuse(normalised)
    feeds = {}
    if options.verify or options.hls:
        # a QKeras model's random inputs lie on a grid where its float32 sums are exact (verify.GRID_STEP)
        on_grid = source.loader == "qkeras"
        feeds = make_feeds(normalised, options.samples, options.seed, options.data, on_grid)
    parity, hls = [], None
    if options.verify:
        with stage("verify", "checking parity in onnxruntime"):
            parity = verify(source, exported, reference, normalised, fused, feeds)
    if options.hls is not None:
        with stage("hls", f"building hls4ml projects in {options.hls.out_dir}"):
            hls = run_hls(fused, feeds, options.hls)
    return Result(source.path, None, source.kind, source.loader, source.note, passes, fusion, parity, stage.seconds,
                  hls, fused)


EXPORTING = {"onnx": "reading ONNX graph", "keras": "exporting to ONNX with tf2onnx",
             "qkeras": "exporting QKeras to QONNX (tf2onnx + Quant nodes)",
             "tflite": "converting TFLite to ONNX with tf2onnx"}


def export(source: Source) -> onnx.ModelProto:
    """The ONNX graph of the source; a QKeras model becomes QONNX, and its reference for parity is what the graph
    computes (the QKeras model minus a final softmax)."""
    if source.onnx_model is not None:
        return source.onnx_model
    if source.loader == "tflite":
        return tflite_to_onnx(source.path)
    if source.loader != "qkeras":
        return keras_to_onnx(source.keras_model)
    exported = qkeras_to_qonnx(source.keras_model)
    source.keras_model = exported.reference
    source.note = "; ".join(exported.notes) or None
    return qonnx_ops.prepare(exported.model)  # runnable Quant functions, as for a QONNX file read from disk


def verify(
    source: Source,
    exported: onnx.ModelProto,
    onnx_reference: Callable[[Feeds], list[np.ndarray]] | None,
    normalised: onnx.ModelProto,
    fused: onnx.ModelProto,
    feeds: Feeds,
) -> list[Parity]:
    atol = REFERENCE_ATOL
    if source.kind == "keras":
        reference, name = keras_runner(source.keras_model), source.loader if source.loader == "qkeras" else "keras"
    elif source.kind == "tflite":
        # an int8 model may differ from TFLite's integer kernels by one output quantization step (tflite.py)
        reference, name = tflite_runner(source.path), "tflite"
        atol = max([REFERENCE_ATOL, *(1.001 * step for step in output_steps(exported))])
    else:
        reference, name = onnx_reference, "input onnx"
    parity = check_parity(reference, name, normalised, fused, feeds, atol)
    failed = [p for p in parity if not p.ok]
    if failed:
        # QKeras vs onnxruntime on inputs off the grid where float32 sums are exact: say so (verify.GRID_STEP)
        note = off_grid_note(feeds) if name == "qkeras" else ""
        detail = "; ".join(
            f"{p.name}: max abs err {p.max_abs_err:.3g} > allowed"
            + (f" ({p.nonfinite} non-finite output values, not the same NaN/inf on both sides)" if p.nonfinite else "")
            + (note if p is parity[0] else "")
            for p in failed
        )
        raise ParityError(f"parity check failed ({detail}); nothing written")
    return parity
