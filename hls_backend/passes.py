"""The optimizer pass that moves a marked activation into its producer's write-back, after precision inference.

hls4ml first does everything it normally does to the producer and the activation (weights, conv_to_conv_x_d,
precision inference, which is keyed on hard-coded class names and cannot be extended from outside); only then
does the producer take over the activation's output, keeping the pre-activation precision for its first cast.
An epilogue stage of the table between them (the ApplyAlpha of a float-scale Quant) goes into the write-back too:
the producer takes its weight arrays and types, and the stage leaves the graph.
"""

from __future__ import annotations

import numpy as np
from hls4ml.model.graph import ModelGraph
from hls4ml.model.layers import Conv1D, Conv2D, Dense, Layer
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.types import NamedType

from hls_backend.internals import take_over_output
from onnx_fuse.patterns import BY_OP, EPILOGUES, Activation, Epilogue

FUSE_PASS = "onnx_fuse_fuse_activation"
EPILOGUE_PASS = "onnx_fuse_fuse_epilogue"
# HLSConfig Model key set on the fused design only: its producers also take an epilogue stage with no activation
# after it.
EPILOGUE_CONFIG_KEY = "OnnxFuseEpilogue"
# Per-layer hls4ml config key on the activation layer of a pair the file fused; its value is the fused op's name
# (ConvRelu, DenseLeakyRelu, ...). The unfused design is converted without these keys.
PAIR_CONFIG_KEY = "OnnxFusePair"
# Set on a producer that now applies its activation in the write-back: {"op": table activation op, "values":
# literal format fields, "types": names of type fields, each held as attribute TYPE_PREFIX + name, "epilogue": the
# table epilogue's hls_layer or None, "stage": that stage's layer name, "weights": its weight fields -> attribute
# names on the producer, "indexed": whether the stage's values differ per output channel}.
WRITE_BACK = "onnx_fuse_write_back"
# hls4ml 1.3's io_parallel conv function of each conv layer class (its function templates, data format cl).
STOCK_PARALLEL_CONV = {
    "Conv1D": "conv_1d_cl", "Conv2D": "conv_2d_cl", "PointwiseConv1D": "pointwise_conv_1d_cl",
    "PointwiseConv2D": "pointwise_conv_2d_cl", "DepthwiseConv1D": "depthwise_conv_1d_cl",
    "DepthwiseConv2D": "depthwise_conv_2d_cl",
}
# Types stay NamedType attributes of the producer, so hls4ml's backend converts them to HLS types like its own.
TYPE_PREFIX = "onnx_fuse_"


def fusable_producer(producer: Layer) -> Layer | None:
    """`producer` if it is a conv or Dense whose write-back (nnet::cast) can take more stages, else None."""
    # Conv1D/Conv2D cover hls4ml's pointwise and depthwise subclasses: all write back through
    # nnet::cast<data_T, res_T, mult_config> (depthwise_product and the latency/resource/stream conv kernels).
    if not isinstance(producer, (Conv1D, Conv2D, Dense)):
        return None
    if not single_consumer(producer):
        return None
    if producer.get_attr(WRITE_BACK) is not None:  # its write-back holds a stage already (a QDQ Quant's two)
        return None
    # Paths whose write-back is not nnet::cast: generated code (distributed arithmetic, resource_unrolled Dense)
    # and binary/XNOR layers.
    strategy = str(producer.get_attr("strategy", "")).lower()
    if strategy == "distributed_arithmetic" or (isinstance(producer, Dense) and strategy == "resource_unrolled"):
        return None
    weight = producer.get_weights("weight")
    if producer.get_input_variable().type.precision.width == 1 or weight.type.precision.width == 1:
        return None
    return producer


def single_consumer(layer: Layer) -> bool:
    return layer.outputs[0] not in layer.model.outputs and len(layer.get_output_nodes()) == 1


def repeats_every(stage: Layer, epilogue: Epilogue, period: int) -> bool:
    """Every weight array of the stage holds `period` values repeated (hls4ml broadcasts ApplyAlpha's arrays to the
    whole output, channels last): element i < period is the value of output channel i."""
    arrays = [stage.get_weights(w).data.reshape(-1) for w in epilogue.weights]
    return all(a.size % period == 0 and np.all(a.reshape(-1, period) == a[:period]) for a in arrays)


def indexed_write_back(producer: Layer) -> bool:
    """Whether the fused layer can get the output channel in its write-back. hls4ml 1.3's Dense (both io types) and
    every io_stream conv (plain, depthwise and pointwise: their mult config's `kernel`) write their outputs through
    a config's `kernel`, which templates.py replaces; an io_parallel conv is called through templates.py's
    onnx_fuse_indexed instead."""
    return producer.class_name == "Dense" or producer.class_name in STOCK_PARALLEL_CONV


def output_channels(producer: Layer) -> int:
    return int(producer.get_attr("n_out") if producer.class_name == "Dense" else producer.get_attr("n_filt"))


def epilogue_of(stage: Layer, producer: Layer, alone: bool = False) -> tuple[Epilogue, bool] | None:
    """(the table epilogue `stage` is, whether the write-back must index it by output channel) if `producer`'s
    write-back can compute it exactly, else None. `alone`: no activation follows (the stage may be a graph output)."""
    epilogue = EPILOGUES.get(stage.class_name.lower())
    if epilogue is None or not (alone or single_consumer(stage)):
        return None
    # nnet::normalize multiplies through its config's product, which is product::mult unless a type is binary.
    if any(stage.get_weights(w).type.precision.width == 1 for w in epilogue.weights):
        return None
    if repeats_every(stage, epilogue, 1):
        return epilogue, False
    if indexed_write_back(producer) and repeats_every(stage, epilogue, output_channels(producer)):
        return epilogue, True
    return None


def write_back_chain(activation: Layer) -> tuple[Layer, Layer | None, bool] | None:
    """(producer, epilogue stage or None, indexed by channel) feeding `activation` if the producer's write-back can
    take them all."""
    stage = activation.get_input_node()
    if EPILOGUES.get(stage.class_name.lower()) is None:
        return (stage, None, False) if fusable_producer(stage) is not None else None
    producer = fusable_producer(stage.get_input_node())
    found = epilogue_of(stage, producer) if producer is not None else None
    return (producer, stage, found[1]) if found is not None else None


def marked_activation(layer: Layer) -> Activation | None:
    """The table activation of a marked pair if `layer` is the hls4ml layer made from it, else None."""
    fused = layer.model.config.get_layer_config_value(layer, PAIR_CONFIG_KEY, None)
    if fused not in BY_OP:
        return None
    activation = BY_OP[fused].activation
    return activation if str(layer.get_attr("activation", layer.class_name)).lower() == activation.hls_layer else None


def take_into_write_back(model: ModelGraph, producer: Layer, stage: Layer | None, indexed: bool,
                         activation_layer: Layer | None) -> None:
    """`producer` computes `stage` (a table epilogue) and the marked `activation_layer` in its write-back, either
    of them possibly absent, and takes over the last one's output."""
    activation = marked_activation(activation_layer) if activation_layer is not None else None
    values = {name: "{}".format(activation_layer.get_attr(name)) for name in activation.hls_values} if activation else {}
    types = {name: activation_layer.get_attr(name) for name in activation.hls_types} if activation else {}
    # The pre-activation precision is the producer's own result type (the write-back casts to it first), or the
    # epilogue stage's result type after it.
    types["producer_t"] = producer.get_output_variable().type
    types["pre_t"] = (stage or producer).get_output_variable().type
    weights = {}  # table field -> the producer attribute holding that array
    if stage is not None:
        for name in EPILOGUES[stage.class_name.lower()].weights:
            weight = stage.get_weights(name)
            # The array moves to the producer as it is (name, type, values): the write-back reads the very array
            # the unfused stage reads, and hls4ml writes and loads it as one of the producer's weights.
            producer.set_attr(TYPE_PREFIX + name, weight)
            producer.set_attr(TYPE_PREFIX + name + "_t", weight.type)
            weights[name] = TYPE_PREFIX + name
    for name, named in types.items():
        producer.set_attr(TYPE_PREFIX + name, NamedType(f"layer{producer.index}_{name}", named.precision))
    producer.set_attr(WRITE_BACK, {
        "op": activation.op if activation else None, "values": values, "types": sorted(types), "weights": weights,
        "epilogue": stage.class_name.lower() if stage is not None else None,
        "stage": stage.name if stage is not None else None, "indexed": indexed,
    })
    for layer in (stage, activation_layer):
        if layer is not None:
            take_over_output(model, producer, layer)


class FuseActivation(OptimizerPass):
    def match(self, node: Layer) -> bool:
        return marked_activation(node) is not None and write_back_chain(node) is not None

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        producer, stage, indexed = write_back_chain(node)
        take_into_write_back(model, producer, stage, indexed, node)
        return True


class FuseEpilogue(OptimizerPass):
    """Producer -> epilogue stage with no marked activation after it (a Conv or Dense whose float-scale Quant left
    an ApplyAlpha, e.g. the logits layer): the stage goes into the write-back, in the fused design only."""

    def match(self, node: Layer) -> bool:
        if not node.model.config.get_config_value("HLSConfig", {}).get("Model", {}).get(EPILOGUE_CONFIG_KEY):
            return False
        if EPILOGUES.get(node.class_name.lower()) is None:
            return False
        consumers = node.get_output_nodes()
        if any(marked_activation(c) is not None for c in consumers):
            return False  # FuseActivation's
        if len(consumers) > 1 or (not consumers and node.outputs[0] not in node.model.outputs):
            return False
        producer = fusable_producer(node.get_input_node())
        if producer is None or producer.get_attr(WRITE_BACK) is not None:
            return False
        return epilogue_of(node, producer, alone=True) is not None

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        producer = node.get_input_node()
        take_into_write_back(model, producer, node, epilogue_of(node, producer, alone=True)[1], None)
        return True
