"""The optimizer pass that moves a marked activation into its producer's write-back, after precision inference.

hls4ml first does everything it normally does to the producer and the activation (weights, conv_to_conv_x_d,
precision inference, which is keyed on hard-coded class names and cannot be extended from outside); only then
does the producer take over the activation's output, keeping the pre-activation precision for its first cast.
"""

from __future__ import annotations

from hls4ml.model.graph import ModelGraph
from hls4ml.model.layers import Activation, Conv1D, Conv2D, Dense, Layer
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.types import NamedType

from hls_backend.clip import OnnxFuseClip
from hls_backend.internals import take_over_output
from onnx_fuse.patterns import BY_OP

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


def write_back_fields(activation: Layer, op: str) -> tuple[dict[str, str], dict[str, NamedType]]:
    """(literal, type) fields the table's write-back expression needs, read as hls4ml's templates read them."""
    if op == "LeakyRelu":
        # the stock template prints `activ_param` with str.format and passes it as param_t
        return {"param": "{}".format(activation.get_attr("activ_param", 1.0))}, {"param_t": activation.get_attr("param_t")}
    if op == "Clip":
        return {"low": repr(activation.get_attr("low")), "high": repr(activation.get_attr("high"))}, {}
    return {}, {}


def marked_op(activation: Layer) -> str | None:
    """The table activation op of a marked pair whose layer is the kind hls4ml made from that op, else None."""
    fused = activation.model.config.get_layer_config_value(activation, PAIR_CONFIG_KEY, None)
    if fused not in BY_OP:
        return None
    op = BY_OP[fused].activation.op
    expected = {"Relu": "relu", "LeakyRelu": "leakyrelu"}
    if op == "Clip":
        return op if isinstance(activation, OnnxFuseClip) else None
    if isinstance(activation, Activation) and str(activation.get_attr("activation", "")).lower() == expected.get(op):
        return op
    return None


class FuseActivation(OptimizerPass):
    def match(self, node: Layer) -> bool:
        return marked_op(node) is not None and fusable_producer(node) is not None

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        op, producer = marked_op(node), fusable_producer(node)
        values, types = write_back_fields(node, op)
        # The pre-activation precision is the producer's own result type (the write-back casts to it first).
        types["pre_t"] = producer.get_output_variable().type
        for name, named in types.items():
            producer.set_attr(TYPE_PREFIX + name, NamedType(f"layer{producer.index}_{name}", named.precision))
        producer.set_attr(WRITE_BACK, {"op": op, "values": values, "types": sorted(types)})
        take_over_output(model, producer, node)
        return True
