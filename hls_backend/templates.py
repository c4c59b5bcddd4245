"""Config template that gives a fused conv (or Dense) its activation: an explicit specialization of nnet::cast.

An epilogue whose values differ per output channel (a per-channel ApplyAlpha) needs the channel, which nnet::cast
does not receive: the layer's config then gets its own `kernel` (the member template hls4ml's Dense and io_stream
conv call for each output vector), which runs the stock kernel into the producer's result type and applies the
epilogue and activation to each element with its index, the same expressions as the cast specialization. An
io_parallel conv has no such member (its loops cast each output): its call becomes nnet::onnx_fuse_indexed
(nnet_utils/onnx_fuse_indexed.h), which runs the stock conv function into the producer's result type and then the
same per-element write-back, held in a config<index>_onnx_fuse struct.

Every conv path (io_parallel/io_stream, Latency/Resource/resource_unrolled, pointwise, depthwise) writes each output
through `nnet::cast<data_T, res_T, CONFIG_T::mult_config>(acc)` (nnet_mult.h, nnet_depthwise_product.h), and a
Dense through `nnet::cast<data_T, res_T, CONFIG_T>`; specializing cast for this layer's config applies the
activation there, with no extra dataflow stage. It relies on cast's signature in hls4ml 1.3 and on the stock conv
config template naming the mult config config<index>_mult.
"""

from __future__ import annotations

import re
from pathlib import Path

from hls4ml.backends.fpga.fpga_layers import PointwiseConv1D, PointwiseConv2D
from hls4ml.backends.template import Template
from hls4ml.model.layers import Conv1D, Conv2D, Dense, DepthwiseConv1D, DepthwiseConv2D, Layer

from hls_backend.passes import STOCK_PARALLEL_CONV, TYPE_PREFIX, WRITE_BACK
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

# An io_parallel conv's write-back, indexed by channel: its stock conv function (passes.STOCK_PARALLEL_CONV) into
# product_t, and the element expressions, for nnet::onnx_fuse_indexed.
INDEXED_CONV_CONFIG = """
{marker} of layer {index} ({op}), indexed by output channel
struct config{index}_onnx_fuse {{
    typedef {producer_t} product_t;
    typedef config{index}::weight_t weight_t;
    typedef config{index}::bias_t bias_t;
    static const unsigned n_in = {n_in};
    static const unsigned n_out = {n_out};
    static const unsigned n_chan = {n_chan};
    static const unsigned n_weights = {n_weights};
    static const unsigned n_biases = {n_biases};
    template <class data_T>
    static void produce(data_T data[n_in], product_t product[n_out], weight_t weights[n_weights],
                        bias_t biases[n_biases]) {{
        #pragma HLS INLINE
        nnet::{stock}<data_T, product_t, config{index}>(data, product, weights, biases);
    }}
    static {out_t} write_back(product_t product, unsigned i) {{
        #pragma HLS INLINE
        {expression}
        {body}
    }}
}};
"""
INDEXED_HEADER = Path(__file__).resolve().parent / "nnet_utils" / "onnx_fuse_indexed.h"
# The stock call `nnet::<conv function><input_t, output_t, config<index>>(...)`, its function and config renamed.
STOCK_CALL = re.compile(r"nnet::\w+<([^<>,]+),\s*([^<>,]+),\s*config(\d+)>")

PRODUCERS = (Conv1D, Conv2D, PointwiseConv1D, PointwiseConv2D, DepthwiseConv1D, DepthwiseConv2D, Dense)
CONVS = tuple(cls for cls in PRODUCERS if cls.__name__ in STOCK_PARALLEL_CONV)


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
        if node.get_attr(WRITE_BACK)["indexed"] and io_parallel_conv(node):
            node.set_attr("config_cpp", config + "\n" + self.indexed_conv(node))
        elif node.get_attr(WRITE_BACK)["indexed"]:
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

    def indexed_conv(self, node: Layer) -> str:
        return INDEXED_CONV_CONFIG.format(
            stock=STOCK_PARALLEL_CONV[node.class_name], n_in=node.get_input_variable().size(),
            n_out=node.get_output_variable().size(), n_chan=node.get_attr("n_filt"),
            n_weights=node.get_weights("weight").data_length, n_biases=node.get_weights("bias").data_length,
            **self.fields(node, "i"),
        )

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


def io_parallel_conv(node: Layer) -> bool:
    return node.class_name in STOCK_PARALLEL_CONV and node.model.config.get_config_value("IOType") == "io_parallel"


class IndexedConvCallTemplate(Template):
    """An io_parallel conv whose write-back is indexed by channel is called through nnet::onnx_fuse_indexed with its
    config<index>_onnx_fuse (runs after the stock function template, whose call it rewrites)."""

    def __init__(self) -> None:
        super().__init__("onnx_fuse_indexed_conv_call", CONVS, "function_cpp")

    def match(self, node: Layer) -> bool:
        write_back = node.get_attr(WRITE_BACK)
        return write_back is not None and write_back["indexed"] and io_parallel_conv(node) and super().match(node)

    def transform(self, model, node: Layer) -> bool:
        call = node.get_attr("function_cpp") or ""
        if "onnx_fuse_indexed" in call:  # Vitis runs its own template flow and then Vivado's
            return False
        call, calls = STOCK_CALL.subn(r"nnet::onnx_fuse_indexed<\1, \2, config\3_onnx_fuse>", call)
        if calls != 1:
            raise RuntimeError(f"onnx_fuse: layer {node.name}'s call {call!r} is not one stock conv call")
        node.set_attr("function_cpp", call)
        node.set_attr("include_header", [*node.get_attr("include_header", []), f"nnet_utils/{INDEXED_HEADER.name}"])
        return False
