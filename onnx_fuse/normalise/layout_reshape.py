"""Turn a layout-changing Reshape back into the Transpose it stands for.

With one channel, tf2onnx writes the NHWC <-> NCHW Transpose as a Reshape (only a size-1 axis moves). qonnx's
channels-last conversion removes layout Transposes but not Reshapes, and hls4ml then fails on the stray Reshape
in io_stream, so a single-channel model (MNIST-like) would not convert. Same values, same order: exact.
"""

from __future__ import annotations

import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern

from onnx_fuse.normalise.rewrite import apply_rules


def layout_perms(rank: int) -> list[list[int]]:
    to_channels_first = [0, rank - 1, *range(1, rank - 1)]
    to_channels_last = [0, *range(2, rank), 1]
    return [to_channels_first, to_channels_last]


def matching_perm(in_shape: list[int], out_shape: list[int]) -> list[int] | None:
    if len(in_shape) != len(out_shape) or len(in_shape) < 3:
        return None
    for perm in layout_perms(len(in_shape)):
        if [in_shape[i] for i in perm] == out_shape:
            return perm
    return None


class LayoutReshapeIsTranspose(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, shape):
        return op.Reshape(x, shape, _outputs=["reshaped"])

    def check(self, context, x, shape, reshaped, **_) -> bool:
        return self._perm(x, reshaped) is not None

    def rewrite(self, op, x, shape, reshaped, **_):
        return op.Transpose(x, perm=self._perm(x, reshaped))

    @staticmethod
    def _perm(x: ir.Value, reshaped: ir.Value) -> list[int] | None:
        if x.shape is None or reshaped.shape is None or not x.shape.is_static() or not reshaped.shape.is_static():
            return None
        in_shape, out_shape = list(x.shape.numpy()), list(reshaped.shape.numpy())
        # A Reshape keeps element order: it equals the Transpose only if the non-1 axes keep their order.
        if [d for d in in_shape if d != 1] != [d for d in out_shape if d != 1]:
            return None
        return matching_perm(in_shape, out_shape)


RULES = pattern.RewriteRuleSet([LayoutReshapeIsTranspose.rule()])


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    return apply_rules(model, RULES, "layout Reshape written as Transpose", {"Reshape"})
