"""Public entry points: hls4ml config and conversion for an onnx-fuse file (or any plain ONNX graph)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import onnx

from hls_backend.alpha_types import derived_types, has_float_scales, with_types
from hls_backend.passes import EPILOGUE_CONFIG_KEY, PAIR_CONFIG_KEY
from hls_backend.preprocess import UnsupportedModelError, check_stream_pools, preprocess
from hls_backend.registration import register


def config_from_fused_onnx(
    model: str | Path | onnx.ModelProto,
    granularity: str = "name",
    backend: str = "Vivado",
    default_precision: str = "fixed<16,6>",
    default_reuse_factor: int = 1,
    alpha_types: bool = True,
    **kwargs: Any,
) -> dict:
    """hls4ml config with one entry per layer of the UNFUSED graph (Conv_i and Relu_i separately).

    The fused file converts to exactly those layers, so the same config drives the fused and the unfused design:
    the producer's entry sets the pre-activation precision, the activation's entry the fused output's.
    alpha_types: in a graph with float-scale Quants, the layers hls4ml makes of them (ApplyAlpha) and the layers
    they read get types from the scales (alpha_types.py) instead of default_precision; this converts the graph once
    more (no build).
    """
    register()
    graph, _ = preprocess(model)
    import hls4ml

    config = hls4ml.utils.config_from_onnx_model(
        graph,
        granularity=granularity,
        backend=backend,
        default_precision=default_precision,
        default_reuse_factor=default_reuse_factor,
        **kwargs,
    )
    if alpha_types:
        with_types(config, types_from_scales(model, config, backend, graph))
    return config


def types_from_scales(
    model: str | Path | onnx.ModelProto, config: dict, backend: str = "Vivado", graph: onnx.ModelProto | None = None
) -> dict[str, dict[str, str]]:
    """{layer: {precision key: type}} from the float scales (alpha_types.py) for the design `config` builds; empty
    for a graph without float-scale Quants. `graph`: the model already preprocessed, if at hand."""
    if not has_float_scales(graph if graph is not None else preprocess(model)[0]):
        return {}
    unfused = convert(model, backend=backend, io_type="io_parallel", hls_config=config, fuse=False)
    return derived_types(unfused)


def convert(
    model: str | Path | onnx.ModelProto,
    output_dir: str | Path = "hls4ml_prj",
    backend: str = "Vivado",
    io_type: str = "io_stream",
    hls_config: dict | None = None,
    fuse: bool = True,
    **kwargs: Any,
):
    """Convert an onnx-fuse file to an hls4ml ModelGraph whose fused pairs are single conv/Dense layers that apply
    the activation in their write-back.

    fuse=False converts the same graph with every pair left as two layers (the reference for bit-exactness).
    Extra kwargs go to hls4ml.converters.convert_from_onnx_model (part, clock_period, project_name, ...).
    """
    register()
    graph, marks = preprocess(model)
    if io_type == "io_stream":
        check_stream_pools(graph)
    if hls_config is None:
        hls_config = config_from_fused_onnx(model, backend=backend)
    # hls4ml edits the config it converts with (its QONNX passes replace the LayerName entries of the layers they
    # make, ApplyAlpha's derived types included): the caller's stays as it was, for the next design.
    hls_config = copy.deepcopy(hls_config)
    if fuse:
        hls_config.setdefault("Model", {})[EPILOGUE_CONFIG_KEY] = True
        for name, op in marks.items():
            hls_config.setdefault("LayerName", {}).setdefault(name, {})[PAIR_CONFIG_KEY] = op
    import hls4ml

    converted = hls4ml.converters.convert_from_onnx_model(
        graph, output_dir=str(output_dir), backend=backend, io_type=io_type, hls_config=hls_config, **kwargs
    )
    check_depthwise_strategy(converted)
    return converted


def check_depthwise_strategy(graph) -> None:
    """hls4ml 1.3 has no Resource-strategy depthwise conv: io_parallel asserts in C-sim, io_stream computes other
    values than the model (a DepthwiseConv1D 6.4 off onnxruntime at that layer, a DepthwiseConv2D 17.9), the same
    in a fused and an unfused design, so only a comparison with the model would show it. Refused after conversion,
    where each layer's strategy is resolved."""
    for layer in graph.get_layers():
        strategy = str(layer.get_attr("strategy", "latency")).lower()
        if layer.class_name.startswith("DepthwiseConv") and strategy.startswith("resource"):
            raise UnsupportedModelError(
                f"not supported on the hls4ml path: {layer.class_name} '{layer.name}' with the {strategy} strategy "
                "(hls4ml 1.3 computes depthwise convs correctly only with the Latency strategy: set Strategy: "
                f"Latency for {layer.name} in --config, or use --strategy Latency)"
            )
