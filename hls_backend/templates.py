"""Config template that gives a fused conv (or Dense) its ReLU: an explicit specialization of nnet::cast.

A Dense layer writes back through `nnet::cast<data_T, res_T, CONFIG_T>` with its own config; for convs:

Every conv path (io_parallel/io_stream, Latency/Resource/resource_unrolled, pointwise) writes each output through
`nnet::cast<data_T, res_T, CONFIG_T::mult_config>(acc)` (nnet_mult.h), so specializing cast for this layer's
mult config applies the ReLU there, with no new nnet header and no extra dataflow stage. It relies on cast's
internal signature (hls4ml 1.3) and on the stock conv config template naming the mult config config<index>_mult.
"""

from __future__ import annotations

from hls4ml.backends.fpga.fpga_layers import PointwiseConv1D, PointwiseConv2D
from hls4ml.backends.template import Template
from hls4ml.model.layers import Conv1D, Conv2D, Dense, Layer

from hls_backend.passes import FUSED_FLAG, PRE_RELU_TYPE

MARKER = "// onnx_fuse: ReLU in the write-back"

# Two casts, in the unfused order: to the conv's result type, then ReLU into the ReLU's result type. A single cast
# to the ReLU type is not bit-exact with rounding/saturating types.
CAST_SPECIALIZATION = """{marker} of layer {index}
namespace nnet {{
template <>
inline {out_t} cast<{in_t}, {out_t}, {config}>(typename {config}::accum_t x) {{
    #pragma HLS INLINE
    {pre_t} pre = ({pre_t})x;
    return pre > 0 ? ({out_t})pre : ({out_t})0;
}}
}} // namespace nnet
"""


def element_type(var) -> str:
    """C++ element type of a variable; in io_stream the variable's own type is an nnet::array of it."""
    return var.type.precision.definition_cpp()


class FusedReluCastTemplate(Template):
    def __init__(self) -> None:
        super().__init__("onnx_fuse_relu_cast", (Conv1D, Conv2D, PointwiseConv1D, PointwiseConv2D, Dense), "config_cpp")

    def match(self, node: Layer) -> bool:
        return bool(node.get_attr(FUSED_FLAG, False)) and super().match(node)

    def transform(self, model, node: Layer) -> bool:
        # Appends to the stock conv config (this template runs after it). Vitis runs its own template flow and then
        # Vivado's, which rewrites config_cpp from scratch: appending only when absent keeps exactly one copy.
        config = node.get_attr("config_cpp") or ""
        if MARKER not in config:
            node.set_attr("config_cpp", config + "\n" + self.format(node))
        return False

    def format(self, node: Layer) -> str:
        return CAST_SPECIALIZATION.format(
            marker=MARKER,
            index=node.index,
            # a conv's write-back runs in its dense "mult" config; a Dense layer's in its own config
            config=f"config{node.index}" if isinstance(node, Dense) else f"config{node.index}_mult",
            in_t=element_type(node.get_input_variable()),
            out_t=element_type(node.get_output_variable()),
            pre_t=node.get_attr(PRE_RELU_TYPE).precision.definition_cpp(),
        )
