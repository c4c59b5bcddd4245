"""Plug the extension into hls4ml 1.3 through its public registries only (no fork, no monkeypatching)."""

from __future__ import annotations

import hls4ml
from hls4ml.backends import get_backend
from hls4ml.converters import register_onnx_layer_handler
from hls4ml.converters.onnx_to_hls import get_supported_onnx_layers
from hls4ml.model.flow import get_flow, update_flow
from hls4ml.model.layers import register_layer
from hls4ml.model.optimizer import get_available_passes, register_pass

from hls_backend.clip import HEADER, ClipConfigTemplate, ClipFunctionTemplate, OnnxFuseClip, parse_clip
from hls_backend.passes import EPILOGUE_PASS, FUSE_PASS, FuseActivation, FuseEpilogue
from hls_backend.pool1d import POOL1D_OP, parse_pool1d
from hls_backend.resize import RESIZE1D_OP, parse_resize1d
from hls_backend.templates import INDEXED_HEADER, FusedActivationCastTemplate, IndexedConvCallTemplate

# The write-back specializes nnet::cast's 1.3 signature and the fuse pass edits 1.3's ModelGraph dicts
# (internals.py): another hls4ml version may compile and still compute something else.
SUPPORTED_HLS4ML = "1.3."
# Static flow shared by Vivado and Vitis; appended after its infer_precision_types. (update_flow on a *dynamic*
# flow crashes in 1.3.0, this one is static.)
OPTIMIZE_FLOW = "vivado:optimize"
# Vitis runs the Vitis AND the Vivado template flows; a template registered only on Vitis would be overwritten.
BACKENDS = ("Vivado", "Vitis")
TEMPLATES = (FusedActivationCastTemplate, IndexedConvCallTemplate, ClipConfigTemplate, ClipFunctionTemplate)


class UnsupportedHls4mlError(RuntimeError):
    pass


def register() -> None:
    """Register handler, layer, pass, templates and C++ source; safe to call any number of times (hls4ml's
    registries raise on repeats). The pass only acts on layers marked in the config, so every other hls4ml
    conversion in the process is unaffected."""
    if not hls4ml.__version__.startswith(SUPPORTED_HLS4ML):
        raise UnsupportedHls4mlError(
            f"hls_backend is written for hls4ml {SUPPORTED_HLS4ML}x, found {hls4ml.__version__}: "
            'install the pinned version (pip install -e .)'
        )
    register_layer(OnnxFuseClip.__name__, OnnxFuseClip)  # layer_map just assigns: harmless to repeat
    if "Clip" not in get_supported_onnx_layers():
        register_onnx_layer_handler("Clip", parse_clip)
    for op, handler in ((POOL1D_OP, parse_pool1d), (RESIZE1D_OP, parse_resize1d)):
        if op not in get_supported_onnx_layers():
            register_onnx_layer_handler(op, handler)
    passes = get_available_passes()
    for name, optimizer in ((FUSE_PASS, FuseActivation), (EPILOGUE_PASS, FuseEpilogue)):
        if name not in passes:
            register_pass(name, optimizer)
        if name not in get_flow(OPTIMIZE_FLOW).optimizers:
            update_flow(OPTIMIZE_FLOW, add_optimizers=[name])
    for backend_name in BACKENDS:
        backend = get_backend(backend_name)
        for header in (HEADER, INDEXED_HEADER):
            backend.register_source(header)  # a dict entry: harmless to repeat
        for template in TEMPLATES:
            if f"{backend.name.lower()}:{template().get_name()}" not in passes:
                backend.register_template(template)
