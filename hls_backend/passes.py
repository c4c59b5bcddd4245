"""The optimizer pass that moves a marked activation into its producer's write-back, after precision inference.

hls4ml first does everything it normally does to the producer and the activation (weights, conv_to_conv_x_d,
precision inference, which is keyed on hard-coded class names and cannot be extended from outside); only then
does the producer take over the activation's output, keeping the pre-activation precision for its first cast.
"""

from __future__ import annotations

from hls4ml.model.graph import ModelGraph
from hls4ml.model.layers import Conv1D, Conv2D, Dense, Layer
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.types import NamedType

from hls_backend.internals import take_over_output
from onnx_fuse.patterns import BY_OP, Activation

FUSE_PASS = "onnx_fuse_fuse_activation"
# Per-layer hls4ml config key on the activation layer of a pair the file fused; its value is the fused op's name
# (ConvRelu, DenseLeakyRelu, ...). The unfused design is converted without these keys.
PAIR_CONFIG_KEY = "OnnxFusePair"
# Set on a producer that now applies its activation in the write-back: {"op": table activation op, "values":
# literal format fields, "types": names of type fields, each held as attribute TYPE_PREFIX + name}.
WRITE_BACK = "onnx_fuse_write_back"
# Types stay NamedType attributes of the producer, so hls4ml's backend converts them to HLS types like its own.
TYPE_PREFIX = "onnx_fuse_"


def fusable_producer(activation: Layer) -> Layer | None:
    """The conv or Dense feeding `activation` if its write-back (nnet::cast) can take the activation, else None."""
    producer = activation.get_input_node()
    # Conv1D/Conv2D cover hls4ml's pointwise and depthwise subclasses: all write back through
    # nnet::cast<data_T, res_T, mult_config> (depthwise_product and the latency/resource/stream conv kernels).
    if not isinstance(producer, (Conv1D, Conv2D, Dense)):
        return None
    if producer.outputs[0] in producer.model.outputs or len(producer.get_output_nodes()) != 1:
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


def marked_activation(layer: Layer) -> Activation | None:
    """The table activation of a marked pair if `layer` is the hls4ml layer made from it, else None."""
    fused = layer.model.config.get_layer_config_value(layer, PAIR_CONFIG_KEY, None)
    if fused not in BY_OP:
        return None
    activation = BY_OP[fused].activation
    return activation if str(layer.get_attr("activation", layer.class_name)).lower() == activation.hls_layer else None


class FuseActivation(OptimizerPass):
    def match(self, node: Layer) -> bool:
        return marked_activation(node) is not None and fusable_producer(node) is not None

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        activation, producer = marked_activation(node), fusable_producer(node)
        values = {name: "{}".format(node.get_attr(name)) for name in activation.hls_values}
        types = {name: node.get_attr(name) for name in activation.hls_types}
        # The pre-activation precision is the producer's own result type (the write-back casts to it first).
        types["pre_t"] = producer.get_output_variable().type
        for name, named in types.items():
            producer.set_attr(TYPE_PREFIX + name, NamedType(f"layer{producer.index}_{name}", named.precision))
        producer.set_attr(WRITE_BACK, {"op": activation.op, "values": values, "types": sorted(types)})
        take_over_output(model, producer, node)
        return True
