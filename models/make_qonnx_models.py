"""Build the Brevitas QONNX models that onnx-fuse's QONNX tests use.

Run: `pip install -e ".[brevitas,test]" && python models/make_qonnx_models.py`. Deterministic (fixed seeds, one
thread, deterministic torch kernels); about a minute on 2 cores. Each model is trained briefly on scikit-learn's 8x8
digits and exported with Brevitas' `export_qonnx`:
- digits_qcnn_po2.onnx       power-of-2 scales, Brevitas' default pattern
                             Quant(x) -> Conv(X, Quant(W), Quant(b)) -> Relu -> Quant(unsigned), plus Dense -> Relu
- digits_qcnn_outquant.onnx  `output_quant` on each conv: Conv -> Quant(signed, po2) -> Relu -> Quant(unsigned)
- digits_qcnn_float.onnx     Brevitas' default float (non power-of-2) scales, float Dense biases: the negative
                             control for hls4ml (each non-power-of-2 Quant becomes ApplyAlpha layers)
- digits_qcnn_float_qbias.onnx  the same with quantized Dense biases too: hls4ml 1.3 cannot convert it (IndexError
                             on the Dense bias Quant's constant), so the hls path must refuse it with one line
- *.npz                      `x`: held-out inputs (N, 1, 8, 8) as the ONNX input expects; `y_brevitas`: Brevitas'
                             own outputs for them
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import torch
from brevitas import nn as qnn
from brevitas.export import export_qonnx
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)
from make_torch_models import seed_everything
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
TRAIN, HELD_OUT = 1500, 100


def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.images[order] / 16.0).astype(np.float32)[:, None]  # NCHW, values on the 1/16 grid in [0, 1]
    return x, d.target[order].astype(np.int64)


class QuantCNN(torch.nn.Module):
    """Quant -> [Conv -> ReLU] x 2 -> MaxPool -> Dense -> ReLU -> Dense, every tensor quantized (Dense biases
    only with `dense_bias_quant`)."""

    def __init__(self, po2: bool, output_quant: bool, dense_bias_quant: bool = True) -> None:
        super().__init__()
        weight = Int8WeightPerTensorFixedPoint if po2 else Int8WeightPerTensorFloat
        act = Int8ActPerTensorFixedPoint if po2 else Int8ActPerTensorFloat
        relu = Uint8ActPerTensorFixedPoint if po2 else Uint8ActPerTensorFloat
        # Int16Bias takes scale = input scale x weight scale: a power of 2 when both are.
        layer = {"weight_quant": weight, "bias_quant": Int16Bias, "return_quant_tensor": True}
        dense_bias = Int16Bias if dense_bias_quant else None
        conv_out = {"output_quant": act} if output_quant else {}
        self.inp = qnn.QuantIdentity(act_quant=act, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 8, 3, padding=1, **layer, **conv_out)
        self.relu1 = qnn.QuantReLU(act_quant=relu, return_quant_tensor=True)
        self.conv2 = qnn.QuantConv2d(8, 8, 3, padding=0, **layer, **conv_out)
        self.relu2 = qnn.QuantReLU(act_quant=relu, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc1 = qnn.QuantLinear(8 * 3 * 3, 16, weight_quant=weight, bias_quant=dense_bias, return_quant_tensor=True)
        self.relu3 = qnn.QuantReLU(act_quant=relu, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 10, weight_quant=weight, bias_quant=dense_bias, return_quant_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(self.inp(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(TRAIN, generator=batches).split(32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(xt[TRAIN:]).argmax(1)
    return float((predicted == yt[TRAIN:]).float().mean())


def node_list(model: onnx.ModelProto) -> list[str]:
    """Each node as `op(inputs)`, Quant nodes with their bit width, signedness and whether the scale is a power of 2."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    lines = []
    for node in model.graph.node:
        text = f"{node.op_type}({', '.join(node.input)}) -> {', '.join(node.output)}"
        if node.op_type == "Quant":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            scale, bits = inits.get(node.input[1]), inits.get(node.input[3])
            po2 = scale is not None and bool(np.all(np.log2(scale) == np.round(np.log2(scale))))
            text += f"  [{'' if attrs.get('signed') else 'u'}int{int(bits) if bits is not None else '?'}"
            text += f" narrow={attrs.get('narrow')} po2 scale={po2}]"
        lines.append(text)
    return lines


def strip_export_metadata(path: Path) -> None:
    """torch's exporter records each node's Python stack trace (absolute paths of this machine) as metadata: drop it,
    so the file depends only on the model. The weights are saved inline: the side file `<name>.onnx.data` that the
    exporter writes is not needed."""
    model = onnx.load(str(path))  # loads external data, if referenced
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    graph = model.graph
    for item in [model, graph, *graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]
    onnx.save(model, str(path))


def make(name: str, x: np.ndarray, y: np.ndarray, **kind: bool) -> None:
    seed_everything(0)
    model = QuantCNN(**kind)
    export_and_record(name, model, x, train(model, x, y, epochs=8))


def export_and_record(name: str, model: torch.nn.Module, x: np.ndarray, acc: float) -> None:
    """NAME.onnx by Brevitas' export_qonnx, and NAME.npz with the held-out inputs and Brevitas' outputs for them."""
    path = HERE / f"{name}.onnx"
    export_qonnx(model, input_t=torch.from_numpy(x[TRAIN : TRAIN + 1]), export_path=str(path))
    strip_export_metadata(path)
    held_out = x[TRAIN : TRAIN + HELD_OUT]
    with torch.no_grad():
        y_brevitas = model(torch.from_numpy(held_out)).numpy()
    np.savez_compressed(HERE / f"{name}.npz", x=held_out, y_brevitas=y_brevitas)
    exported = onnx.load(str(path))
    print(f"{path.name}: held-out accuracy {acc:.3f}, {path.stat().st_size} bytes, "
          f"ops {dict(Counter(n.op_type for n in exported.graph.node))}")
    for line in node_list(exported):
        print("   ", line)


def main() -> None:
    x, y = digits()
    make("digits_qcnn_po2", x, y, po2=True, output_quant=False)
    make("digits_qcnn_outquant", x, y, po2=True, output_quant=True)
    make("digits_qcnn_float", x, y, po2=False, output_quant=False, dense_bias_quant=False)
    make("digits_qcnn_float_qbias", x, y, po2=False, output_quant=False)


if __name__ == "__main__":
    main()
