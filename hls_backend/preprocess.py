"""Turn an onnx-fuse file into the channels-last graph hls4ml's ONNX front end reads, with its fused pairs tagged.

qonnx knows nothing of onnx_fuse's ops: its shape inference and channels-last conversion would leave them
channels-first between Transposes, and hls4ml's conv parser refuses anything not channels-last. So each fused node's
function is inlined again (onnx's inliner: producer -> activation), the activation node is tagged with node
metadata (patterns.PAIR_KEY), the graph goes through hls4ml's documented qonnx recipe, which keeps node metadata
while it renames every node, and the tagged nodes' new names are returned: convert.py marks those layers in the
hls4ml config and passes.py moves their activation into the producer's write-back. The fused and the unfused file
give the same graph here; only the marks differ.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

from hls_backend.constant_rank import DropLeadingOnesOfConstants
from hls_backend.pool1d import mark_1d_pools
from hls_backend.pooling import ChannelsLastAveragePool
from hls_backend.resize import ChannelsLastResize, mark_1d_resizes
from onnx_fuse.patterns import BY_OP, FUSED_DOMAIN, PAIR_KEY, clip_bounds, fused_nodes

# hls4ml reads these attributes of a Clip node (hls_backend/clip.py); its front end looks up a shape for every
# node input, so the constant bounds move from inputs to attributes.
CLIP_LOW, CLIP_HIGH = "onnx_fuse_low", "onnx_fuse_high"


class UnsupportedModelError(ValueError):
    """The graph holds something hls4ml 1.3 + qonnx would crash on or convert into a wrong design."""


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    return onnx.load(str(model))


def inline_and_tag(model: onnx.ModelProto) -> onnx.ModelProto:
    """Expand onnx_fuse's functions (only ours: a QONNX file's own functions stay) and tag each pair's activation."""
    pairs = {node.output[0]: node.op_type for node in fused_nodes(model)}
    inlined = onnx.inliner.inline_selected_functions(model, [(FUSED_DOMAIN, op) for op in BY_OP])
    kept = [f for f in inlined.functions if f.domain != FUSED_DOMAIN]
    del inlined.functions[:]
    inlined.functions.extend(kept)
    imports = [o for o in inlined.opset_import if o.domain != FUSED_DOMAIN]
    del inlined.opset_import[:]
    inlined.opset_import.extend(imports)
    for node in inlined.graph.node:
        if node.output and node.output[0] in pairs:
            node.metadata_props.add(key=PAIR_KEY, value=pairs[node.output[0]])
        # A bias-less call inlines to Conv(X, W, ""): an empty trailing input means "absent" in ONNX, but hls4ml
        # looks up a shape for every input name and fails on "".
        while node.input and not node.input[-1]:
            del node.input[-1]
    return inlined


def explicit_gemm_bias(model: onnx.ModelProto) -> None:
    """Give a bias-less Gemm (PyTorch's `nn.Linear(bias=False)` from the dynamo exporter, Brevitas'
    `QuantLinear(bias=False)`) an explicit zero bias: qonnx 1.0's GemmToMatMul reads the third input unconditionally
    (IndexError). x + 0 is x, so the numbers do not change."""
    gemms = [n for n in model.graph.node if n.op_type == "Gemm" and (len(n.input) < 3 or not n.input[2])]
    if not gemms:
        return
    shapes = {v.name: v.type.tensor_type.shape.dim for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    shapes.update({v.name: v.type.tensor_type.shape.dim for v in model.graph.output})
    for node in gemms:
        dims = shapes.get(node.output[0])
        if not dims or not dims[-1].HasField("dim_value"):
            raise UnsupportedModelError(f"Gemm '{node.name}' has no bias and no known output width")
        name = f"{node.name or node.output[0]}_zero_bias"
        model.graph.initializer.append(numpy_helper.from_array(np.zeros(dims[-1].dim_value, np.float32), name))
        del node.input[2:]
        node.input.append(name)


def qonnx_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """hls4ml's documented qonnx recipe, with GemmToMatMul moved before channels-last (qonnx reads any transB
    attribute as true, including tf2onnx's explicit transB=0, unless the Gemm is gone first)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    # onnx-fuse output can carry duplicate value_info entries, which ModelWrapper asserts on; qonnx re-infers
    # every shape anyway.
    del model.graph.value_info[:]
    wrapped = cleanup_model(ModelWrapper(model))
    with warnings.catch_warnings():
        # qonnx warns for any Gemm above opset 9; tf2onnx's opset-13 Gemm (no broadcasting tricks) converts
        # correctly, checked end to end against onnxruntime in tests/test_hls_backend.py.
        warnings.filterwarnings("ignore", message="The GemmToMatMul transformation only offers", category=UserWarning)
        wrapped = wrapped.transform(GemmToMatMul())
    try:
        wrapped = wrapped.transform(ChannelsLastAveragePool())  # qonnx has no channels-last AveragePool
        wrapped = wrapped.transform(ChannelsLastResize())  # nor Resize
    except ValueError as exc:
        raise UnsupportedModelError(f"not supported on the hls4ml path: {exc}") from exc
    wrapped = wrapped.transform(ConvertToChannelsLastAndClean())
    wrapped = wrapped.transform(DropLeadingOnesOfConstants())  # hls4ml's ApplyAlpha wants batch-free constants
    wrapped = cleanup_model(wrapped)
    mark_1d_pools(wrapped.model)  # after qonnx's last shape inference, which does not know the marked ops
    mark_1d_resizes(wrapped.model)
    return wrapped.model


def clip_bounds_as_attributes(model: onnx.ModelProto) -> None:
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Clip":
            continue
        bounds = clip_bounds([constants.get(name) for name in node.input[1:3]])
        if bounds is None:
            raise UnsupportedModelError(f"Clip '{node.name}' needs constant scalar bounds on the hls4ml path")
        del node.input[1:]
        node.attribute.extend([helper.make_attribute(CLIP_LOW, bounds[0]), helper.make_attribute(CLIP_HIGH, bounds[1])])
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def check_dense_bias_scales(model: onnx.ModelProto) -> None:
    """hls4ml 1.3 crashes (IndexError in its precision inference) on a Dense whose bias comes from a Quant with a
    scale that is not a power of 2; after GemmToMatMul that bias is a constant Quant feeding an Add."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    adds = {name for node in model.graph.node if node.op_type == "Add" for name in node.input}
    for node in model.graph.node:
        if node.op_type != "Quant" or node.output[0] not in adds or node.input[0] not in constants:
            continue
        scale = constants.get(node.input[1])
        if scale is not None and not np.all(np.log2(np.abs(scale)) == np.round(np.log2(np.abs(scale)))):
            raise UnsupportedModelError(
                f"Quant '{node.name}' gives a Dense bias a scale that is not a power of 2, which hls4ml 1.3 cannot "
                "convert (its precision inference fails): export that bias unquantized or with a power-of-2 scale"
            )


def check_stream_pools(model: onnx.ModelProto) -> None:
    """hls4ml 1.3's io_stream pooling asserts that a pool has no padding (nnet_pooling_stream.h): a padded MaxPool
    (PyTorch's `MaxPool2d(3, 2, padding=1)`) converts, then aborts C-sim. Refused before anything compiles."""
    for node in model.graph.node:
        pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [])
        if "Pool" in node.op_type and any(pads):
            raise UnsupportedModelError(
                f"not supported on the hls4ml path: {node.op_type} '{node.name}' with padding {pads} in io_stream "
                "(hls4ml 1.3's stream pooling requires unpadded pools)"
            )


def preprocess(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """onnx-fuse file (or any plain ONNX graph) -> (channels-last graph for hls4ml, {activation node: fused op})."""
    original = load_model(model)
    inlined = inline_and_tag(original)
    explicit_gemm_bias(inlined)
    channels_last = qonnx_channels_last(inlined)
    check_dense_bias_scales(channels_last)
    clip_bounds_as_attributes(channels_last)
    marks = {
        node.name: prop.value
        for node in channels_last.graph.node
        for prop in node.metadata_props
        if prop.key == PAIR_KEY
    }
    return channels_last, marks
