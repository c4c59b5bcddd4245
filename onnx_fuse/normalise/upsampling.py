"""A chain of data-movement ops that computes nearest-neighbour upsampling becomes one Resize.

tf2onnx writes Keras' UpSampling2D / UpSampling1D (Keras 3: `ops.repeat` along each axis) as Unsqueeze -> Tile ->
Reshape per axis, with the layout Transposes its optimizer moved in between; hls4ml has no Tile and stops at the
Unsqueeze. Its Resize layer computes exactly nearest upsampling (hls_backend/resize.py).

The chain's spelling varies with tf2onnx's optimizer and the layout, so it is recognised by what it computes, not by
its op sequence: a run of single-consumer Unsqueeze / Squeeze / Tile / Transpose / Reshape / Expand nodes with
constant parameters only moves and copies elements, so one run on an input of distinct values (0, 1, 2, ...) shows
exactly which element lands where. If the result is `repeat(repeat(x, sh, axis=2), sw, axis=3)` of the chain's
(N, C, H, W) input (or `repeat(x, s, axis=2)` of an (N, C, W) one), the chain becomes Resize(x, scales=[1, 1, sh, sw]) in PyTorch's nearest form (asymmetric +
floor), which picks the same elements: exact.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

MOVES = {"Unsqueeze", "Squeeze", "Tile", "Transpose", "Reshape", "Expand"}


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def chains(model: onnx.ModelProto, constants: set[str]) -> list[list[onnx.NodeProto]]:
    """Maximal runs of data-movement nodes, each starting at a tensor no data-movement node made."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {out: node for node in model.graph.node for out in node.output}
    outputs = {o.name for o in model.graph.output}

    def is_move(node: onnx.NodeProto) -> bool:
        return node.op_type in MOVES and node.domain == "" and all(name in constants for name in node.input[1:] if name)

    found = []
    for node in model.graph.node:
        start = producers.get(node.input[0]) if node.input else None
        if not is_move(node) or (start is not None and is_move(start)):
            continue
        chain = [node]
        while True:
            out = chain[-1].output[0]
            nxt = consumers.get(out, [])
            if out in outputs or len(nxt) != 1 or not is_move(nxt[0]) or nxt[0].input[0] != out:
                break
            chain.append(nxt[0])
        found.append(chain)
    return found


def upsampling_scales(chain: list[onnx.NodeProto], model: onnx.ModelProto, shapes: dict[str, list[int]]) -> list[int] | None:
    """The spatial scales ([sh, sw], or [s] for 1-D) if the chain computes nearest upsampling of its (N, C, H, W)
    or (N, C, W) input, else None."""
    a, b = shapes.get(chain[0].input[0]), shapes.get(chain[-1].output[0])
    if a is None or b is None or len(a) not in (3, 4) or len(b) != len(a) or a[:2] != b[:2]:
        return None
    if any(o % i for i, o in zip(a[2:], b[2:])) or a == b:
        return None
    scales = [o // i for i, o in zip(a[2:], b[2:])]
    used = {name for node in chain for name in node.input[1:]}
    inits = [t for t in model.graph.initializer if t.name in used]
    probe = helper.make_model(
        helper.make_graph(chain, "probe", [helper.make_tensor_value_info(chain[0].input[0], onnx.TensorProto.FLOAT, a)],
                          [helper.make_tensor_value_info(chain[-1].output[0], onnx.TensorProto.FLOAT, b)], inits),
        opset_imports=list(model.opset_import),
    )
    x = np.arange(np.prod(a), dtype=np.float32).reshape(a)  # distinct values: exact in float32 up to 2**24
    got = ReferenceEvaluator(probe).run(None, {chain[0].input[0]: x})[0]
    expected = x
    for axis, scale in enumerate(scales, start=2):
        expected = np.repeat(expected, scale, axis=axis)
    return scales if got.shape == expected.shape and np.array_equal(got, expected) else None


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(node.op_type == "Tile" for node in model.graph.node):
        return model, []  # every upsampling chain copies elements, and only Tile (or Expand) can
    constants = {t.name for t in model.graph.initializer}
    shapes = static_shapes(model)
    found = [(chain, s) for chain in chains(model, constants) if (s := upsampling_scales(chain, model, shapes))]
    if not found:
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())  # edit a copy, never the caller's graph
    graph = model.graph
    changes = []
    for chain, spatial in found:
        first = chain[0].name or chain[0].output[0]
        index = next(i for i, n in enumerate(graph.node) if n.output[0] == chain[-1].output[0])
        scales = f"{first}_upsampling_scales"
        graph.initializer.append(numpy_helper.from_array(np.array([1, 1, *spatial], dtype=np.float32), scales))
        resize = helper.make_node("Resize", [chain[0].input[0], "", scales], [chain[-1].output[0]],
                                  name=f"{first}_upsampling", mode="nearest",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        graph.node.insert(index + 1, resize)
        outs = {node.output[0] for node in chain}
        kept = [n for n in graph.node if n.op_type not in MOVES or n.output[0] not in outs]  # the Resize stays
        del graph.node[:]
        graph.node.extend(kept)
        changes.append(f"{len(chain)} data-movement nodes after {chain[0].input[0]} written as Resize (x{' x'.join(map(str, spatial))})")
    used = {name for node in graph.node for name in node.input}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return model, changes
