"""QKeras -> QONNX: quantized layers become standard ONNX ops fed and followed by qonnx `Quant` nodes.

Route: rebuild the QKeras model as a plain Keras model holding the weights QKeras really computes with (quantized,
BatchNorm folded exactly as the QKeras layers fold it), export that with the project's tf2onnx path
(onnx_fuse.export), then add the Quant nodes by layer. Why not write the ONNX graph directly: tf2onnx already turns
every Keras layer (pooling, padding, flatten, add, concatenate, ...) into the NHWC-input, batch-1, transpose-free form
the rest of onnx-fuse and qonnx's channels-last conversion expect; a hand-written exporter would repeat all of that
for the few layers QKeras changes. Why not the QKeras model itself: tf2onnx turns its quantizers into Round/Clip/Mul
chains that no QONNX reader recognises. (qonnx 1.0 has no QKeras converter, the last one never folded
QConv2DBatchnorm.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from onnx_fuse.export import keras_to_onnx
from onnx_fuse.qkeras.names import strip_tokens
from onnx_fuse.qkeras.quant_nodes import insert_quant_nodes
from onnx_fuse.qkeras.rebuild import rebuild


@dataclass
class QkerasExport:
    model: onnx.ModelProto  # the QONNX graph
    reference: Any  # the QKeras model that graph computes (the input model, minus a dropped final softmax)
    quant_nodes: int
    notes: list[str] = field(default_factory=list)


def final_softmax(model: Any) -> Any | None:
    """The model's last layer when it is a standalone softmax on the single output, else None."""
    if len(model.outputs) != 1 or not model.layers:
        return None
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    is_softmax = type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"
    return last if is_softmax and type(last).__name__ in ("Activation", "Softmax", "QActivation") else None


def qkeras_to_qonnx(model: Any, drop_softmax: bool = True) -> QkerasExport:
    """Export a loaded QKeras model to QONNX (NHWC input, batch 1, opset 13, Quant in qonnx.custom_op.general).

    drop_softmax: a final standalone softmax is left out (hls4ml designs end at the logits; the argmax is the same)
    and `reference` is the QKeras model up to it, so parity compares the same function.
    """
    import keras

    notes = []
    reference = model
    softmax = final_softmax(model) if drop_softmax else None
    if softmax is not None:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one array, as Keras was
        reference = keras.Model(inputs, softmax.input, name=model.name)
        notes.append(f"final softmax '{softmax.name}' left out: the graph ends at the logits (same argmax)")
    plain, layers = rebuild(reference)
    # shapes inferred while the graph is still standard ONNX: the Quant nodes' outputs are declared from them
    proto = insert_quant_nodes(onnx.shape_inference.infer_shapes(keras_to_onnx(plain)), layers)
    strip_tokens(proto)
    quant_nodes = sum(1 for n in proto.graph.node if n.op_type == "Quant")
    return QkerasExport(proto, reference, quant_nodes, notes)
