"""Config template that gives a fused conv (or Dense) its activation: an explicit specialization of nnet::cast.

An epilogue whose values differ per output channel (a per-channel ApplyAlpha) needs the channel, which nnet::cast
does not receive: the layer's config then gets its own `kernel` (the member template hls4ml's Dense and io_stream
conv call for each output vector), which runs the stock kernel into the producer's result type and applies the
epilogue and activation to each element with its index, the same expressions as the cast specialization.

Every conv path (io_parallel/io_stream, Latency/Resource/resource_unrolled, pointwise, depthwise) writes each output
through `nnet::cast<data_T, res_T, CONFIG_T::mult_config>(acc)` (nnet_mult.h, nnet_depthwise_product.h), and a
Dense through `nnet::cast<data_T, res_T, CONFIG_T>`; specializing cast for this layer's config applies the
activation there, with no extra dataflow stage. It relies on cast's signature in hls4ml 1.3 and on the stock conv
config template naming the mult config config<index>_mult.
"""

from __future__ import annotations

import re

from hls4ml.backends.fpga.fpga_layers import PointwiseConv1D, PointwiseConv2D
from hls4ml.backends.template import Template
from hls4ml.model.layers import Conv1D, Conv2D, Dense, DepthwiseConv1D, DepthwiseConv2D, Layer

from hls_backend.passes import TYPE_PREFIX, WRITE_BACK
from onnx_fuse.patterns import ACTIVATION_OPS, EPILOGUES

MARKER = "// onnx_fuse: activation in the write-back"
# A producer that took an epilogue stage and no activation (passes.FuseEpilogue).
ALONE_MARKER = "// onnx_fuse: no activation, epilogue in the write-back"
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
# No activation after the epilogue: its result is the layer's output (pre_t is the output type).
NO_ACTIVATION = "return ({out_t})pre;"
# No epilogue: the pre-activation value is the producer's result.
PRODUCER_RESULT = "{pre_t} pre = ({pre_t})x;"


# The stock config's kernel alias: `template<class data_T, class res_T, class CONFIG_T>\n    using kernel = ...;`
KERNEL_ALIAS = re.compile(r"(template\s*<class data_T, class res_T, class CONFIG_T>\s*using )kernel( = [^;]+;)")
# Replaces it: the stock kernel under another name, and a kernel that writes back each element with its index.
INDEXED_KERNEL = """\\1onnx_fuse_stock_kernel\\2
    {marker} of layer {index} ({op}), indexed by output channel
    template <class data_T, class res_T, class CONFIG_T> struct kernel {{
        static res_T write_back({producer_t} product, unsigned i) {{
            #pragma HLS INLINE
            {expression}
            {body}
        }}
        static void dense(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
                          typename CONFIG_T::weight_t weights[CONFIG_T::n_in * CONFIG_T::n_out],
                          typename CONFIG_T::bias_t biases[CONFIG_T::n_out]) {{
            #pragma HLS INLINE
            {producer_t} product[CONFIG_T::n_out];
            #pragma HLS ARRAY_PARTITION variable=product complete
            CONFIG_T::template onnx_fuse_stock_kernel<data_T, {producer_t}, CONFIG_T>::dense(data, product, weights, biases);
        WriteBack:
            for (unsigned i = 0; i < CONFIG_T::n_out; i++) {{
                #pragma HLS UNROLL
                res[i] = write_back(product[i], i);
            }}
        }}
    }};"""

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
        if MARKER in config or ALONE_MARKER in config:
            return False
        if node.get_attr(WRITE_BACK)["indexed"]:
            config, aliases = KERNEL_ALIAS.subn(lambda match: self.indexed_kernel(node, match), config)
            if aliases != 1:  # passes.indexed_write_back admitted a layer whose config has no single kernel
                raise RuntimeError(f"onnx_fuse: layer {node.name}'s config has {aliases} kernel aliases, not 1")
            node.set_attr("config_cpp", config)
        else:
            node.set_attr("config_cpp", config + "\n" + self.format(node))
        return False

    def fields(self, node: Layer, index: str) -> dict[str, str]:
        """Format fields of the write-back: types, the activation's literals, the epilogue's C++ expression from
        `product` to `pre` (reading element `index` of its arrays) and the activation's body from `pre`."""
        write_back = node.get_attr(WRITE_BACK)
        out_t = element_type(node.get_output_variable())
        op = write_back["op"]
        fields = dict(write_back["values"], out_t=out_t, op=op or "none", index=node.index,
                      marker=MARKER if op else ALONE_MARKER)
        fields.update((name, node.get_attr(TYPE_PREFIX + name).precision.definition_cpp()) for name in write_back["types"])
        fields["body"] = (ACTIVATION_OPS[op].write_back if op else NO_ACTIVATION).format(**fields)
        if write_back["epilogue"] is not None:
            epilogue = EPILOGUES[write_back["epilogue"]]
            for name, attribute in write_back["weights"].items():
                weight = node.get_attr(attribute)
                fields[name] = weight.name
                fields[name + "_t"] = weight.type.name  # the typedef the array is declared with
            fields["expression"] = (f"{EPILOGUE_MARKER}: {write_back['stage']} ({epilogue.hls_layer}) into {node.name}"
                                    f"\n    {epilogue.write_back.format(i=index, **fields)}")
        return fields

    def indexed_kernel(self, node: Layer, match: re.Match) -> str:
        fields = self.fields(node, "i")
        return match.expand(INDEXED_KERNEL.format(**fields))

    def format(self, node: Layer) -> str:
        fields = self.fields(node, "0")
        head = PRODUCER_RESULT.format(**fields)
        if "expression" in fields:
            head = "{producer_t} product = ({producer_t})x;\n    {expression}".format(**fields)
        return CAST_SPECIALIZATION.format(
            head=head,
            # a conv's write-back runs in its dense "mult" config; a Dense layer's in its own config
            config=f"config{node.index}" if isinstance(node, Dense) else f"config{node.index}_mult",
            in_t=element_type(node.get_input_variable()),
            **fields,
        )
