"""Build the Brevitas models with Brevitas' default float quantizers that the epilogue tests use.

Run: `pip install -e ".[brevitas,test]" && python models/make_float_scale_models.py`. Deterministic (the seeds,
training loop and export of make_qonnx_models.py). Brevitas' defaults give float (not power-of-2) scales, which
hls4ml 1.3 turns into ApplyAlpha layers between each producer and its activation:
- digits_fs_cnn_pt.onnx   QuantConv2d / QuantLinear with their default Int8WeightPerTensorFloat weights and float
                          biases, QuantReLU's default Uint8ActPerTensorFloat, Int8ActPerTensorFloat input
- digits_fs_cnn_pc.onnx   the same with Int8WeightPerChannelFloat weights and bias-less convs (hls4ml 1.3 cannot
                          move per-channel float weight scales below a Dense, or a conv with a float input scale:
                          the hls path refuses it in one line)
- digits_fs_mlp.onnx      MLP of bias-less QuantLinear layers (Gemm without C), per-tensor weights
- *.npz                   `x`: held-out inputs as the ONNX input expects; `y_brevitas`: Brevitas' own outputs
"""

from __future__ import annotations


import torch
from brevitas import nn as qnn
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from make_qonnx_models import digits, export_and_record, train
from make_torch_models import seed_everything


class FloatScaleCNN(torch.nn.Module):
    """QuantIdentity -> [QuantConv2d -> QuantReLU] x 2 -> MaxPool -> QuantLinear -> QuantReLU -> QuantLinear."""

    def __init__(self, per_channel: bool) -> None:
        super().__init__()
        weight = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        conv = {"weight_quant": weight, "bias": not per_channel, "return_quant_tensor": True}
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 8, 3, padding=1, **conv)
        self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
        self.conv2 = qnn.QuantConv2d(8, 8, 3, padding=0, **conv)
        self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc1 = qnn.QuantLinear(8 * 3 * 3, 16, weight_quant=weight, return_quant_tensor=True)
        self.relu3 = qnn.QuantReLU(return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 10, weight_quant=weight, return_quant_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(self.inp(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class FloatScaleMLP(torch.nn.Module):
    """QuantIdentity -> [QuantLinear(bias=False) -> QuantReLU] x 2 -> QuantLinear(bias=False)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(64, 32, bias=False, return_quant_tensor=True)
        self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(32, 16, bias=False, return_quant_tensor=True)
        self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
        self.fc3 = qnn.QuantLinear(16, 10, bias=False, return_quant_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(self.inp(x))))))


def main() -> None:
    x, y = digits()
    for name, per_channel in (("digits_fs_cnn_pt", False), ("digits_fs_cnn_pc", True)):
        seed_everything(0)
        model = FloatScaleCNN(per_channel)
        export_and_record(name, model, x, train(model, x, y, epochs=8))
    seed_everything(0)
    model, flat = FloatScaleMLP(), x.reshape(len(x), -1)
    export_and_record("digits_fs_mlp", model, flat, train(model, flat, y, epochs=8))


if __name__ == "__main__":
    main()
