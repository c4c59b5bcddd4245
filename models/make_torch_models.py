"""Export small PyTorch models with both of torch.onnx's exporters, as PyTorch users hand them to onnx-fuse.

Run: `pip install -e ".[torch]" && python models/make_torch_models.py`. Deterministic (fixed seeds, one thread):
the same torch version writes the same files. Each model is written twice:
- torch_NAME_dynamo.onnx (+ torch_NAME_dynamo.onnx.data): `torch.onnx.export(..., dynamo=True)`, the default since
  torch 2.9; it keeps the weights in a `.onnx.data` file next to the graph (external data)
- torch_NAME_ts.onnx: the TorchScript exporter (`dynamo=False`), weights inside the file
and torch_NAME.npz holds `x`: seeded inputs in the model's input shape, and `y_torch`: PyTorch's outputs for them.
Weights are seeded random, BatchNorm statistics random (eval mode): no training, the graphs are what matters.

The models cover the layers PyTorch users build hls4ml designs from, and each exporter's idioms for them:
- cnn_bn      Conv2d-BN-ReLU, MaxPool2d, Conv2d-BN-ReLU, AvgPool2d, Flatten, Linear-ReLU, Linear
- mbv2        MobileNetV2 inverted residual: 1x1 Conv-BN-ReLU6, depthwise Conv-BN-ReLU6, 1x1 Conv-BN, residual
              add; then `x.mean((2, 3))` (ReduceMean without keepdims), Linear
- resblock    ResNet basic block: Conv-BN-ReLU, Conv-BN, add skip, ReLU; AdaptiveAvgPool2d(1) then Flatten
              (dynamo: ReduceMean(keepdims=1); TorchScript: GlobalAveragePool), Linear
- conv1d      Conv1d-LeakyReLU, MaxPool1d, Conv1d-LeakyReLU, `x.mean(-1, keepdim=True)` then `view`, Linear
- mlp         Linear-ReLU, Linear-Hardtanh(-1, 1), Linear-ReLU6, Linear
- upsample    Conv2d-ReLU, MaxPool2d, Upsample(scale 2, nearest), Conv2d-ReLU, Upsample(scale 2, nearest),
              Conv2d (a small conv autoencoder: Resize in both exporters)
- stem        Conv2d-ReLU(inplace), MaxPool2d(2), Flatten, Linear(bias=False)-BatchNorm1d-ReLU,
              Dropout, Linear(bias=False) (dynamo: Gemm without a bias input)
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
SAMPLES = 16


def bn(channels: int, dim: int = 2) -> nn.Module:
    """BatchNorm with random statistics and affine parameters, so folding it is visible in the numbers."""
    layer = nn.BatchNorm2d(channels) if dim == 2 else nn.BatchNorm1d(channels)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
        layer.running_mean.uniform_(-0.5, 0.5)
        layer.running_var.uniform_(0.5, 1.5)
    return layer


class CnnBn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), bn(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3), bn(8), nn.ReLU(), nn.AvgPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 12), nn.ReLU(), nn.Linear(12, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class InvertedResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(8, 16, 1, bias=False), bn(16), nn.ReLU6(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), bn(16), nn.ReLU6(),
            nn.Conv2d(16, 8, 1, bias=False), bn(8),
        )
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.block(x)
        return self.fc(x.mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), bn(8), nn.ReLU())
        self.conv1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), bn(8), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), bn(8))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.relu(x + self.conv2(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Conv1dLeaky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, 6, 5, padding=2), nn.LeakyReLU(0.1), nn.MaxPool1d(2),
            nn.Conv1d(6, 8, 3), nn.LeakyReLU(0.2),
        )
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(-1, keepdim=True)
        return self.fc(x.view(x.shape[0], -1))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.Hardtanh(-1.0, 1.0),
            nn.Linear(16, 12), nn.ReLU6(), nn.Linear(12, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Upsample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * 4 * 4, 8, bias=False), bn(8, dim=1), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(8, 3, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


MODELS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "cnn_bn": (CnnBn, (3, 12, 12)),
    "mbv2": (InvertedResidual, (3, 6, 6)),
    "resblock": (BasicBlock, (3, 6, 5)),
    "conv1d": (Conv1dLeaky, (2, 20)),
    "mlp": (Mlp, (10,)),
    "upsample": (Upsample, (1, 6, 6)),
    "stem": (Stem, (3, 8, 8)),
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def export(name: str, module: nn.Module, example: torch.Tensor) -> None:
    # The dynamo exporter writes `location` relative to the graph file; remove a stale .data first, since the
    # exporter appends to an existing one.
    dynamo = HERE / f"torch_{name}_dynamo.onnx"
    for stale in (dynamo, dynamo.with_name(dynamo.name + ".data")):
        stale.unlink(missing_ok=True)
    torch.onnx.export(module, (example,), str(dynamo), dynamo=True, input_names=["x"], output_names=["y"],
                      external_data=True)
    # The dynamo exporter records each node's Python stack trace (absolute paths, line numbers of this script) as
    # node metadata: dropped, so the files do not depend on where and from which revision they were made. The graph
    # file alone is rewritten; the weights stay in the .data file exactly as the exporter wrote it.
    graph = onnx.load(str(dynamo), load_external_data=False)
    for node in graph.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(graph, str(dynamo))
    torch.onnx.export(module, (example,), str(HERE / f"torch_{name}_ts.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=13)


def main() -> None:
    for index, (name, (cls, shape)) in enumerate(MODELS.items()):
        seed_everything(index)
        module = cls().eval()
        x = torch.from_numpy(np.random.default_rng(index).uniform(-1, 1, (SAMPLES, *shape)).astype(np.float32))
        with torch.no_grad():
            y = module(x).numpy()
        export(name, module, x[:1])
        np.savez_compressed(HERE / f"torch_{name}.npz", x=x.numpy(), y_torch=y)
        print(f"torch_{name}: input {shape}, output {y.shape[1:]}")


if __name__ == "__main__":
    main()
