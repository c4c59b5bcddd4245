"""IR layer for a ConvRelu node: a placeholder that lives only until the parse flow lowers it (passes.py).

Deliberately NOT a subclass of hls4ml's `Conv`: the stock pass `conv_to_conv_x_d` rewrites any Conv subclass into
a plain Conv2D and drops every extra attribute, so a subclass would silently lose its ReLU.
"""

from __future__ import annotations

from hls4ml.model.layers import Layer

CLASS_NAME = "ConvRelu"


class ConvRelu(Layer):
    def initialize(self) -> None:
        # Same output shape as hls4ml's ONNX Conv (always channels-last here).
        if self.attributes["n_dim"] == 1:
            shape = [self.attributes["out_width"], self.attributes["n_filt"]]
        else:
            shape = [self.attributes["out_height"], self.attributes["out_width"], self.attributes["n_filt"]]
        self.add_output_variable(shape)
