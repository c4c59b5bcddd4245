"""Config template that gives a fused conv (or Dense) its activation: an explicit specialization of nnet::cast.

Every conv path (io_parallel/io_stream, Latency/Resource/resource_unrolled, pointwise, depthwise) writes each output
through `nnet::cast<data_T, res_T, CONFIG_T::mult_config>(acc)` (nnet_mult.h, nnet_depthwise_product.h), and a
Dense through `nnet::cast<data_T, res_T, CONFIG_T>`; specializing cast for this layer's config applies the
activation there, with no extra dataflow stage. It relies on cast's signature in hls4ml 1.3 and on the stock conv
config template naming the mult config config<index>_mult.
"""

from __future__ import annotations

from hls4ml.backends.fpga.fpga_layers import PointwiseConv1D, PointwiseConv2D
from hls4ml.backends.template import Template
from hls4ml.model.layers import Conv1D, Conv2D, Dense, DepthwiseConv1D, DepthwiseConv2D, Layer

from hls_backend.passes import TYPE_PREFIX, WRITE_BACK
from onnx_fuse.patterns import ACTIVATION_OPS, EPILOGUES

MARKER = "// onnx_fuse: activation in the write-back"
EPILOGUE_MARKER = "// onnx_fuse: epilogue in the write-back"

# Two casts, in the unfused order: to the producer's result type, then the activation into its result type. A
# single cast to the activation's type is not bit-exact with rounding/saturating types.
CAST_SPECIALIZATION = """{marker} of layer {index} ({op})
namespace nnet {{
template <>
inline {out_t} cast<{in_t}, {out_t}, {config}>(typename {config}::accum_t x) {{
    #pragma HLS INLINE
    {head}
    {body}
}}
}} // namespace nnet
"""
# No epilogue: the pre-activation value is the producer's result.
PRODUCER_RESULT = "{pre_t} pre = ({pre_t})x;"
# An epilogue stage (patterns.EPILOGUES) computes the pre-activation value from the producer's result.
WITH_EPILOGUE = "{epilogue_marker}: {stage} ({epilogue}) into {name}\n    {producer_t} product = ({producer_t})x;\n    {expression}"

PRODUCERS = (Conv1D, Conv2D, PointwiseConv1D, PointwiseConv2D, DepthwiseConv1D, DepthwiseConv2D, Dense)


def element_type(var) -> str:
    """C++ element type of a variable; in io_stream the variable's own type is an nnet::array of it."""
    return var.type.precision.definition_cpp()


class FusedActivationCastTemplate(Template):
    def __init__(self) -> None:
        super().__init__("onnx_fuse_activation_cast", PRODUCERS, "config_cpp")

    def match(self, node: Layer) -> bool:
        return node.get_attr(WRITE_BACK) is not None and super().match(node)

    def transform(self, model, node: Layer) -> bool:
        # Appends to the stock config (this template runs after it). Vitis runs its own template flow and then
        # Vivado's, which rewrites config_cpp from scratch: appending only when absent keeps exactly one copy.
        config = node.get_attr("config_cpp") or ""
        if MARKER not in config:
            node.set_attr("config_cpp", config + "\n" + self.format(node))
        return False

    def format(self, node: Layer) -> str:
        write_back = node.get_attr(WRITE_BACK)
        op = write_back["op"]
        out_t = element_type(node.get_output_variable())
        fields = dict(write_back["values"], out_t=out_t)
        fields.update((name, node.get_attr(TYPE_PREFIX + name).precision.definition_cpp()) for name in write_back["types"])
        head = PRODUCER_RESULT.format(**fields)
        if write_back["epilogue"] is not None:
            epilogue = EPILOGUES[write_back["epilogue"]]
            for name, attribute in write_back["weights"].items():
                weight = node.get_attr(attribute)
                fields[name] = weight.name
                fields[name + "_t"] = weight.type.name  # the typedef the array is declared with
            expression = epilogue.write_back.format(i=0, **fields)
            head = WITH_EPILOGUE.format(epilogue_marker=EPILOGUE_MARKER, epilogue=epilogue.hls_layer,
                                        stage=write_back["stage"], name=node.name, expression=expression, **fields)
        return CAST_SPECIALIZATION.format(
            marker=MARKER,
            index=node.index,
            op=op,
            # a conv's write-back runs in its dense "mult" config; a Dense layer's in its own config
            config=f"config{node.index}" if isinstance(node, Dense) else f"config{node.index}_mult",
            in_t=element_type(node.get_input_variable()),
            out_t=out_t,
            head=head,
            body=ACTIVATION_OPS[op].write_back.format(**fields),
        )
