"""The only place that edits hls4ml 1.3 ModelGraph internals (its dicts), fenced here because no public API does it.

hls4ml's `remove_node` would rewire the activation's consumers onto the producer's own (pre-activation) variable;
the fused producer must instead take over the activation's output variable, name and type unchanged.
"""

from __future__ import annotations

from hls4ml.model.graph import ModelGraph
from hls4ml.model.layers import Layer


def take_over_output(model: ModelGraph, producer: Layer, activation: Layer) -> None:
    """`producer` writes `activation`'s output variable; `activation` leaves the graph.

    Same variable object, same name and type: any in-place Flatten/Reshape alias made earlier on it stays valid,
    and the output type is exactly the activation's result type.
    """
    own_var, taken_var = producer.get_output_variable(), activation.get_output_variable()
    own_out, taken_out = producer.outputs[0], activation.outputs[0]
    for key in [k for k, v in producer.attributes.items() if v is own_var]:
        del producer.attributes[key]
    del model.output_vars[own_out]
    del model.graph[activation.name]
    producer.outputs[0] = taken_out
    producer.set_attr(taken_out, taken_var)  # also sets result_t and registers the variable with the model
