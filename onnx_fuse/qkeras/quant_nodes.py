"""Insert qonnx `Quant` nodes into the tf2onnx graph of the rebuilt plain model (rebuild.py).

Each quantized layer's nodes are found by the unique token in their name scope. Weights and biases: every float
initializer a node of the layer reads is matched, by value, to one of the layer's quantized tensors (tf2onnx moves
HWIO kernels to OIHW, depthwise kernels to (C*M, 1, H, W), ...), and a Quant node is put between them.
Activations: the layer's element-wise tail (the Relu or
Clip tf2onnx made of the rebuilt activation) is replaced by [Relu ->] Quant, so a Conv -> Relu pair stays visible.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx_fuse.qkeras.quantizers import QuantSpec, same_spec
from onnx_fuse.qkeras.names import in_scope, unscoped
from onnx_fuse.qkeras.rebuild import QuantLayer
from onnx_fuse.qonnx_ops import QONNX_DOMAIN

ACTIVATION_OPS = {"Relu", "Clip", "Max", "Min", "Identity"}
WEIGHT_OPS = {"Conv", "Gemm", "MatMul", "Add"}


class ExportBug(RuntimeError):
    """The exported graph is not shaped as expected: our bug, never the user's input."""


def keras_to_onnx(keras_value: np.ndarray, onnx_value: np.ndarray) -> tuple[int, ...] | None:
    """The axis permutation that makes onnx_value of keras_value (then merged, as for a depthwise kernel), or None."""
    if keras_value.size != onnx_value.size:
        return None
    return next(
        (
            perm
            for perm in itertools.permutations(range(keras_value.ndim))
            if np.array_equal(np.transpose(keras_value, perm).reshape(onnx_value.shape), onnx_value)
        ),
        None,
    )


def same_values(keras_value: np.ndarray, onnx_value: np.ndarray) -> bool:
    return keras_to_onnx(keras_value, onnx_value) is not None


def onnx_layout(spec: QuantSpec, keras_value: np.ndarray, onnx_value: np.ndarray) -> QuantSpec:
    """A per-channel scale (alpha='auto') laid out as the exported weight is: broadcast to the Keras weight, moved as
    the weight was moved, then every axis along which it does not vary cut to length 1 (e.g. (O, 1, 1, 1) for OIHW)."""
    if np.ndim(spec.scale) == 0:
        return spec
    perm = keras_to_onnx(keras_value, onnx_value)
    full = np.transpose(np.broadcast_to(spec.scale, keras_value.shape), perm).reshape(onnx_value.shape)
    for axis in range(full.ndim):
        first = np.take(full, [0], axis=axis)
        if np.array_equal(np.broadcast_to(first, full.shape), full):
            full = first
    return dataclasses.replace(spec, scale=np.ascontiguousarray(full, dtype=np.float32))


def check_on_grid(layer: QuantLayer, name: str, spec: QuantSpec, value: np.ndarray) -> None:
    """QKeras already quantized the weight: the Quant node must leave it unchanged, or its parameters are wrong."""
    from qonnx.custom_op.general.quant import quant

    again = quant(value, spec.scale, np.float32(0), np.float32(spec.bits), spec.signed, spec.narrow, "ROUND")
    if not np.array_equal(again, value):
        raise ExportBug(f"{layer.name}: the Quant node for {name} would change QKeras' quantized values")


class Inserter:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        # every tensor's type and shape, so the new tensors can be declared too: ONNX shape inference cannot see
        # through a Quant node (a custom op), and passes downstream read shapes from value_info
        self.types = {v.name: v.type for v in (*self.graph.value_info, *self.graph.input, *self.graph.output)}
        for t in self.graph.initializer:
            self.types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
        self.count = 0

    def declare(self, name: str, like: str) -> None:
        if like in self.types and name not in self.types and name not in {o.name for o in self.graph.output}:
            self.graph.value_info.append(helper.make_value_info(name, self.types[like]))
            self.types[name] = self.types[like]

    def constant(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def quant(self, x: str, y: str, spec: QuantSpec, where: str) -> onnx.NodeProto:
        self.count += 1
        prefix = f"{where}_Quant_{self.count}"
        self.declare(y, x)
        return helper.make_node(
            "Quant",
            [x, self.constant(prefix + "_scale", np.asarray(spec.scale, np.float32)),
             self.constant(prefix + "_zeropt", np.zeros((), np.float32)),
             self.constant(prefix + "_bitwidth", np.asarray(spec.bits, np.float32))],
            [y],
            name=prefix,
            domain=QONNX_DOMAIN,
            signed=int(spec.signed),
            narrow=int(spec.narrow),
            rounding_mode="ROUND",
        )

    def weights(
        self, layer: QuantLayer, nodes: list[onnx.NodeProto], others: list[onnx.NodeProto]
    ) -> dict[int, list[onnx.NodeProto]]:
        """id(node) -> the Quant nodes feeding it: one per quantized weight input; initializers stay untouched.

        `nodes` are the layer's own (every float weight they read must be one of the layer's); `others` are nodes
        tf2onnx named outside any layer (it renames a depthwise Conv, e.g. `Conv__25`), searched by value only
        for weights not found in `nodes`.
        """
        added: dict[int, list[onnx.NodeProto]] = {}
        matched: set[str] = set()
        self.match(layer, nodes, added, matched, strict=True)
        if {t.name for t in layer.tensors} - matched:
            self.match(layer, others, added, matched, strict=False)
        # a tensor of zeros reads the same through its Quant node (0 is on every grid); tf2onnx drops an all-zero bias
        missing = {t.name for t in layer.tensors if np.any(t.value)} - matched
        if missing:
            raise ExportBug(f"{layer.name}: weights {sorted(missing)} not found in the exported graph")
        return added

    def match(self, layer: QuantLayer, nodes: list[onnx.NodeProto], added: dict, matched: set, strict: bool) -> None:
        for node in (n for n in nodes if n.op_type in WEIGHT_OPS):
            for i, name in enumerate(node.input):
                init = self.inits.get(name)
                if init is None or init.data_type != onnx.TensorProto.FLOAT:
                    continue
                value = numpy_helper.to_array(init)
                hits = [t for t in layer.tensors if same_values(t.value, value)]
                if not hits:
                    if strict:
                        raise ExportBug(f"{layer.name}: initializer {name} of {node.op_type} matches no layer weight")
                    continue
                quantized = [t for t in hits if t.spec is not None]
                matched.update(t.name for t in hits)
                if not quantized:
                    continue
                tensor = quantized[0]
                if len(quantized) != len(hits) or any(not same_spec(t.spec, tensor.spec) for t in quantized):
                    raise ExportBug(f"{layer.name}: initializer {name} matches weights with different quantizers")
                spec = onnx_layout(tensor.spec, tensor.value, value)
                check_on_grid(layer, tensor.name, spec, value)
                output = f"{name}_quant{self.count + 1}"
                quant = self.quant(name, output, spec, f"{layer.name}/{tensor.name}")
                added.setdefault(id(node), []).append(quant)
                node.input[i] = output

    def activation(self, layer: QuantLayer, nodes: list[onnx.NodeProto]) -> tuple[list[onnx.NodeProto], set[int]]:
        """Replace the layer's element-wise tail x -> ... -> y by x [-> Relu] -> Quant -> y."""
        tail = [n for n in nodes if n.op_type in ACTIVATION_OPS]
        if not tail:
            raise ExportBug(f"{layer.name}: no activation node found in the exported graph")
        for prev, nxt in zip(tail, tail[1:]):
            if nxt.input[0] != prev.output[0]:
                raise ExportBug(f"{layer.name}: its activation nodes are not one chain")
        spec = layer.activation
        x, y = tail[0].input[0], tail[-1].output[0]
        new = []
        if spec.relu:
            new.append(helper.make_node("Relu", [x], [y + "_relu"], name=f"{layer.name}/Relu"))
            self.declare(y + "_relu", y)
            x = y + "_relu"
        new.append(self.quant(x, y, spec, f"{layer.name}/activation"))
        return new, {id(n) for n in tail}


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def insert_quant_nodes(model: onnx.ModelProto, layers: list[QuantLayer]) -> onnx.ModelProto:
    inserter = Inserter(model)
    # one list of the node messages, held for the whole pass: the id()s below must stay those of these objects
    nodes_in_order = list(model.graph.node)
    inits = set(inserter.inits)
    before: dict[int, list[onnx.NodeProto]] = {}  # id(node) -> Quant nodes that must come before it
    replaced: dict[int, list[onnx.NodeProto]] = {}  # id(first removed activation node) -> its replacement
    removed: set[int] = set()
    for layer in (layer for layer in layers if layer.tensors or layer.activation is not None):
        # a layer's nodes: named in its scope, or reading an initializer named in its scope
        nodes = [
            n for n in nodes_in_order
            if in_scope(n.name, layer.token) or any(i in inits and in_scope(i, layer.token) for i in n.input)
        ]
        if not nodes:
            raise ExportBug(f"{layer.name}: no node of this layer in the exported graph")
        before.update(inserter.weights(layer, nodes, [n for n in nodes_in_order if unscoped(n.name)]))
        if layer.activation is not None:
            new, gone = inserter.activation(layer, [n for n in nodes if in_scope(n.name, layer.token)])
            first = next(n for n in nodes if id(n) in gone)
            replaced[id(first)] = new
            removed |= gone
    order = []
    for node in nodes_in_order:
        order.extend(before.get(id(node), []))
        order.extend(replaced.get(id(node), []))
        if id(node) not in removed:
            order.append(node)
    del model.graph.node[:]
    model.graph.node.extend(order)
    drop_unused_initializers(model.graph)
    if not any(o.domain == QONNX_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(QONNX_DOMAIN, 1))
    return model
