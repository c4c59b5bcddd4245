"""Plug the extension into hls4ml 1.3 through its public registries only (no fork, no monkeypatching)."""

from __future__ import annotations

from hls4ml.backends import get_backend
from hls4ml.converters import register_onnx_layer_handler
from hls4ml.converters.onnx_to_hls import get_supported_onnx_layers
from hls4ml.model.flow import get_flow, update_flow
from hls4ml.model.layers import register_layer
from hls4ml.model.optimizer import get_available_passes, register_pass

from hls_backend.handler import parse_conv_relu
from hls_backend.layer import CLASS_NAME, ConvRelu
from hls_backend.passes import FUSE_PASS, LOWER_PASS, FuseConvRelu, LowerConvRelu
from hls_backend.templates import FusedReluCastTemplate

# Lowering must happen where the stock ONNX Conv is turned into Conv1D/Conv2D; an appended pass runs when the
# earlier ones stop matching, and the flow loop then restarts so conv_to_conv_x_d picks up the new Conv.
PARSE_FLOW = "parse_qonnx"
# Static flow shared by Vivado and Vitis; appended after its infer_precision_types. (update_flow on a *dynamic*
# flow crashes in 1.3.0, this one is static.)
OPTIMIZE_FLOW = "vivado:optimize"
# Vitis runs the Vitis AND the Vivado template flows; a template registered only on Vitis would be overwritten.
BACKENDS = ("Vivado", "Vitis")


def register() -> None:
    """Register handler, layer, passes and templates; safe to call any number of times (registries raise on repeats).

    The flows are process-global, but both passes only act on layers that come from a ConvRelu node, so every
    other hls4ml conversion in the process is unaffected.
    """
    register_layer(CLASS_NAME, ConvRelu)  # layer_map just assigns: harmless to repeat
    if CLASS_NAME not in get_supported_onnx_layers():
        register_onnx_layer_handler(CLASS_NAME, parse_conv_relu)
    passes = get_available_passes()
    for name, cls in ((LOWER_PASS, LowerConvRelu), (FUSE_PASS, FuseConvRelu)):
        if name not in passes:
            register_pass(name, cls)
    for flow, name in ((PARSE_FLOW, LOWER_PASS), (OPTIMIZE_FLOW, FUSE_PASS)):
        if name not in get_flow(flow).optimizers:
            update_flow(flow, add_optimizers=[name])
    template_name = FusedReluCastTemplate().get_name()
    for backend_name in BACKENDS:
        backend = get_backend(backend_name)
        if f"{backend.name.lower()}:{template_name}" not in passes:
            backend.register_template(FusedReluCastTemplate)
