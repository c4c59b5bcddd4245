"""A QKeras model rebuilt as a plain Keras model with the quantized (and BatchNorm-folded) weights QKeras computes.

Each quantized layer becomes its Keras base layer (QConv2DBatchnorm -> Conv2D, QDense -> Dense, ...) holding the
weights exactly as the layer's own call() computes them: its kernel/bias quantizers applied to its (folded) weights.
QActivation(quantized_relu) becomes a ReLU, QActivation(quantized_bits) a clip to the quantizer's range; the Quant
nodes that round to the grid are added to the exported graph afterwards (quant_nodes.py). Each rebuilt layer gets a
name with a unique token (names.py), so its nodes can be found in the tf2onnx graph by name scope.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from onnx_fuse.errors import InputError
from onnx_fuse.qkeras.names import TOKEN
from onnx_fuse.qkeras.quantizers import QuantSpec, activation_spec, kind, weight_spec

# QKeras layer -> (Keras base layer, names of the quantized weights in the base layer's get_weights() order)
PLAIN = {
    "QConv1D": ("Conv1D", ("kernel", "bias")),
    "QConv2D": ("Conv2D", ("kernel", "bias")),
    "QConv2DBatchnorm": ("Conv2D", ("kernel", "bias")),
    "QDepthwiseConv2D": ("DepthwiseConv2D", ("depthwise", "bias")),
    "QDepthwiseConv2DBatchnorm": ("DepthwiseConv2D", ("depthwise", "bias")),
    "QSeparableConv1D": ("SeparableConv1D", ("depthwise", "pointwise", "bias")),
    "QSeparableConv2D": ("SeparableConv2D", ("depthwise", "pointwise", "bias")),
    "QDense": ("Dense", ("kernel", "bias")),
    "QDenseBatchnorm": ("Dense", ("kernel", "bias")),
    "QActivation": ("Activation", ()),
}
FOLDED = {"QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm", "QDenseBatchnorm"}


@dataclass
class QuantTensor:
    name: str  # kernel, depthwise, pointwise or bias
    value: np.ndarray  # as the plain Keras layer holds it
    spec: QuantSpec | None  # None: left in float by the QKeras layer


@dataclass
class QuantLayer:
    token: str  # prefix of the rebuilt layer's name, unique in the model
    name: str  # the QKeras layer's name
    tensors: list[QuantTensor] = field(default_factory=list)
    activation: QuantSpec | None = None


def numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def quantized(layer: Any, name: str, value: Any) -> QuantTensor:
    """Apply the quantizer the layer's call() applies to this weight (same condition as call())."""
    attr = {"kernel": "kernel_quantizer", "depthwise": "depthwise_quantizer", "pointwise": "pointwise_quantizer",
            "bias": "bias_quantizer"}[name]
    q = getattr(layer, attr + "_internal", None)
    # the folded layers test the internal quantizer for the bias, the others the configured one (qkeras call())
    applied = q is not None if (name == "bias" and type(layer).__name__ in FOLDED) else bool(getattr(layer, attr, None))
    if not applied or q is None:
        return QuantTensor(name, numpy(value), None)
    value = numpy(q(value))  # runs auto_po2's scale search on this weight, as call() does
    return QuantTensor(name, value, weight_spec(layer.name, q))


def layer_weights(layer: Any, names: tuple[str, ...]) -> list[QuantTensor]:
    cls = type(layer).__name__
    if cls in FOLDED:
        folded = dict(zip(("kernel" if "Depthwise" not in cls else "depthwise", "bias"), layer.get_folded_weights()))
        return [quantized(layer, n, folded[n]) for n in names]
    raw = {"kernel": "kernel", "depthwise": "depthwise_kernel", "pointwise": "pointwise_kernel", "bias": "bias"}
    return [quantized(layer, n, getattr(layer, raw[n])) for n in names if n != "bias" or layer.use_bias]


def clip_to(spec: QuantSpec) -> Callable:
    """The range of a quantized_bits activation as a Keras function (the rounding comes from the Quant node)."""
    import keras

    from qonnx.custom_op.general.quant import max_int, min_int

    lo = float(min_int(spec.signed, spec.narrow, spec.bits) * spec.scale)
    hi = float(max_int(spec.signed, spec.narrow, spec.bits) * spec.scale)
    return lambda x: keras.ops.clip(x, lo, hi)


def plain_activation(layer: Any, activation: Any) -> tuple[Any, QuantSpec | None]:
    """A Keras activation for the rebuilt layer, and the Quant spec that follows it (None: none)."""
    if activation is None:
        return "linear", None
    if kind(activation):
        spec = activation_spec(layer.name, activation)
        return ("relu" if spec.relu else clip_to(spec)), spec
    name = getattr(activation, "__name__", None)
    if name is None or type(activation).__module__.startswith("qkeras"):
        raise InputError(f"QKeras layer '{layer.name}': activation {activation} is not supported")
    return name, None


def plain_layer(layer: Any, index: int) -> tuple[Any, QuantLayer]:
    import keras

    cls = type(layer).__name__
    base, names = PLAIN[cls]
    target = getattr(keras.layers, base)
    record = QuantLayer(TOKEN.format(index), layer.name)
    activation, record.activation = plain_activation(layer, layer.activation)
    if cls == "QActivation":
        return keras.layers.Activation(activation, name=record.token + layer.name), record
    accepted = inspect.signature(target.__init__).parameters
    config = {
        key: value
        for key, value in layer.get_config().items()
        if key in accepted and not key.endswith(("initializer", "regularizer", "constraint")) and key != "activation"
    }
    config.update(name=record.token + layer.name, activation=activation)
    if cls in FOLDED:
        config["use_bias"] = True  # folding always yields a bias
    record.tensors = layer_weights(layer, names)
    return target(**config), record


def is_qkeras_layer(layer: Any) -> bool:
    return type(layer).__module__.startswith("qkeras")


def rebuild(model: Any) -> tuple[Any, list[QuantLayer]]:
    """The plain Keras twin of a QKeras model, and what each quantized layer's Quant nodes must be."""
    import keras

    for layer in model.layers:
        if is_qkeras_layer(layer) and type(layer).__name__ not in PLAIN:
            raise InputError(
                f"unsupported QKeras layer {type(layer).__name__} '{layer.name}': the QKeras exporter handles "
                f"{', '.join(sorted(PLAIN))}"
            )
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    records: dict[int, QuantLayer] = {}

    def clone(layer: Any) -> Any:
        if not is_qkeras_layer(layer):
            return layer.__class__.from_config(layer.get_config())
        new, records[id(layer)] = plain_layer(layer, index[id(layer)])
        return new

    plain = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, plain.layers):
        record = records.get(id(old))
        new.set_weights([t.value for t in record.tensors] if record else old.get_weights())
    return plain, [records[id(layer)] for layer in model.layers if id(layer) in records]
