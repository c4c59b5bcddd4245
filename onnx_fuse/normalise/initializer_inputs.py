"""Drop initializers from the graph inputs, and raise the IR version to 4 at least (the first IR that allows it).

IR 3 requires every initializer to be listed as a graph input too (old PyTorch and Brevitas exports do it at any
IR). Such an input is, by the spec, an overridable default; the weights are meant as constants. onnxslim drops
these inputs but keeps the IR version, so an IR 3 graph then fails the checker ("W in initializer but not in graph
input").
"""

from __future__ import annotations

import onnx

IR_WITHOUT_INITIALIZER_INPUTS = 4


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    initializers = {init.name for init in model.graph.initializer}
    listed = [value.name for value in model.graph.input if value.name in initializers]
    if not listed:
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())  # edit a copy, never the caller's graph
    kept = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.ir_version = max(model.ir_version, IR_WITHOUT_INITIALIZER_INPUTS)
    return model, [f"{len(listed)} initializers dropped from the graph inputs"]
