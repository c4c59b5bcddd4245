"""The two optimizer passes: lower ConvRelu in the parse flow, fuse Conv -> ReLU again after precision inference.

Lowering first lets hls4ml do everything it normally does to a Conv and a ReLU (weights, conv_to_conv_x_d,
precision inference, which is keyed on hard-coded class names and cannot be extended from outside). Only then
does the conv take over the ReLU's output.
"""

from __future__ import annotations

from hls4ml.model.graph import ModelGraph
from hls4ml.model.layers import Activation, Conv1D, Conv2D, Dense, DepthwiseConv1D, DepthwiseConv2D, Layer
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.types import NamedType

from hls_backend.layer import ConvRelu

LOWER_PASS = "onnx_fuse_lower_conv_relu"
FUSE_PASS = "onnx_fuse_fuse_conv_relu"
# Set on the ReLU created by lowering: marks a pair the file fused (an unfused model's Conv -> ReLU is left alone).
PAIR_FLAG = "onnx_fuse_pair"
# Per-layer config key on the ReLU of a fused Dense pair (a DenseRelu node in the file): hls4ml builds Dense from
# MatMul + constant in its own passes, so the pair is marked through the config instead of a lowered node.
DENSE_PAIR_KEY = "OnnxFuseDenseRelu"
# Set on a conv that now applies ReLU in its write-back; the pre-ReLU type is the conv's own result type.
FUSED_FLAG = "onnx_fuse_relu"
PRE_RELU_TYPE = "onnx_fuse_pre_relu_t"


class LowerConvRelu(OptimizerPass):
    def match(self, node: Layer) -> bool:
        return isinstance(node, ConvRelu)

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        spec = dict(node.get_attr("relu_layer"))
        kind, name, inputs, outputs = (spec.pop(k) for k in ("class_name", "name", "inputs", "outputs"))
        conv_attrs = {k: node.get_attr(k) for k in node.get_attr("conv_keys")}
        # Names as in the unfused graph (Conv keeps the Conv's, ReLU gets the Relu's): the same per-name hls4ml
        # config then sets the conv's (pre-ReLU) and the ReLU's precision exactly as for the unfused model.
        conv = model.make_node("Conv", node.name, conv_attrs, list(node.inputs), list(inputs))
        relu = model.make_node(kind, name, spec, list(inputs), list(outputs))
        relu.set_attr(PAIR_FLAG, True)
        model.split_node(node, conv, relu)
        return True


def _fusable_conv(relu: Layer) -> Layer | None:
    """The conv (or Dense) feeding `relu` if its write-back can take the ReLU, else None."""
    conv = relu.get_input_node()
    if isinstance(conv, Dense):
        # resource_unrolled Dense is generated code that does not go through nnet::cast
        if str(conv.get_attr("strategy", "")).lower() in ("resource_unrolled", "distributed_arithmetic"):
            return None
    elif not isinstance(conv, (Conv1D, Conv2D)) or isinstance(conv, (DepthwiseConv1D, DepthwiseConv2D)):
        return None
    if conv.outputs[0] in conv.model.outputs or len(conv.get_output_nodes()) != 1:
        return None
    # Paths whose write-back is not nnet::cast<data_T, res_T, mult_config>: DA codegen and binary/XNOR layers.
    if str(conv.get_attr("strategy", "")).lower() == "distributed_arithmetic":
        return None
    if conv.get_input_variable().type.precision.width == 1 or conv.get_weights("weight").type.precision.width == 1:
        return None
    return conv


class FuseConvRelu(OptimizerPass):
    def match(self, node: Layer) -> bool:
        return (
            isinstance(node, Activation)
            and (node.get_attr(PAIR_FLAG, False) or node.model.config.get_layer_config_value(node, DENSE_PAIR_KEY, False))
            and str(node.get_attr("activation", "")).lower() == "relu"
            and _fusable_conv(node) is not None
        )

    def transform(self, model: ModelGraph, node: Layer) -> bool:
        conv = _fusable_conv(node)
        conv_out, relu_out = conv.outputs[0], node.outputs[0]
        conv_var, relu_var = conv.get_output_variable(), node.get_output_variable()
        # Keep the pre-ReLU precision under its own type name (the write-back casts to it first).
        conv.set_attr(PRE_RELU_TYPE, NamedType(f"layer{conv.index}_pre_relu_t", conv_var.type.precision))
        # The conv takes over the ReLU's output variable (same name and type): any in-place Flatten/Reshape alias
        # made earlier on the ReLU's output stays valid, and the output type is exactly the ReLU's result type.
        # Done by hand because remove_node would rewire consumers onto the conv's own (pre-ReLU) variable.
        for key in [k for k, v in conv.attributes.items() if v is conv_var]:
            del conv.attributes[key]
        del model.output_vars[conv_out]
        del model.graph[node.name]
        conv.outputs[0] = relu_out
        conv.set_attr(relu_out, relu_var)  # also sets result_t and registers the variable with the model
        conv.set_attr(FUSED_FLAG, True)
        return True
