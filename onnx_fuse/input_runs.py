"""The input ONNX file must run in onnxruntime as given, before any pass of ours touches it.

A file onnxruntime itself cannot run (e.g. a BatchNormalization whose scale does not match its input's channels)
would otherwise fail only at the parity check, where the failure reads as if our normalised graph were at fault.
The session built here is the parity reference too, so the check costs one extra single-sample run, no extra
session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from onnx_fuse.errors import InputError, first_line
from onnx_fuse.onnx_reference import runnable
from onnx_fuse.verify import MEMORY_BUDGET, Feeds, budget_bytes, input_specs, run_session, session

# onnxruntime's message for a failed kernel: "... while running BatchNormalization node. Name:'bn0' Status Message:
# Invalid input scale: 0th dimension != 4"
KERNEL_FAILURE = re.compile(r"while running (\w+) node\. Name:'([^']*)' Status Message: (.*)")
# the C++ source location and function signature onnxruntime puts before the message that matters
ORT_LOCATION = re.compile(r"/onnxruntime_src/\S+:\d+ .*?\) ")


def one_sample(model: onnx.ModelProto) -> Feeds | None:
    """One seeded sample per input at batch 1; None when a non-batch dimension is unknown (fix_batch refuses it
    later in its own words) or one sample is over the memory budget (make_feeds refuses that before any feed is
    drawn)."""
    if budget_bytes(model, 1) > MEMORY_BUDGET:
        return None
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape, dtype in input_specs(model):
        if any(d <= 0 for d in shape[1:]):
            return None
        feeds[name] = rng.standard_normal((1, *shape[1:])).astype(dtype)
    return feeds


def cause(model: onnx.ModelProto, exc: BaseException) -> str:
    """onnxruntime's reason, led by the node it names (the op and the node's name, or its first output)."""
    text = ORT_LOCATION.sub("", " ".join(str(exc).split()))
    found = KERNEL_FAILURE.search(text)
    if found is None:
        return first_line(re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text))
    op, name, reason = found.groups()
    if not name:  # an unnamed node: onnxruntime names none, so the first one of that op is named by its output
        node = next((n for n in model.graph.node if n.op_type == op), None)
        name = node.output[0] if node is not None else ""
    return first_line(f"node '{name}' ({op}): {reason}")


def checked_reference(model: onnx.ModelProto, path: Path) -> Callable[[Feeds], list[np.ndarray]]:
    """The input graph as the parity reference, shown to run on one sample first."""
    graph = runnable(model)
    feeds = one_sample(graph)
    try:
        sess = session(graph)
        if feeds is not None:
            sess.run(None, feeds)
    except Exception as exc:  # onnxruntime's pybind errors (Fail, InvalidArgument, RuntimeException, ...)
        raise InputError(f"{path} as given does not run in onnxruntime: {cause(graph, exc)}") from exc
    return lambda f: run_session(sess, f)
