# %% [markdown]
# # onnx-fuse in a notebook: QKeras digits CNN to hls4ml, fused and unfused
#
# The steps of hls4ml's first tutorial (load, configure, convert, compile, predict, compare accuracy), with the
# fusion in between: every Conv/Dense -> activation pair becomes one layer that applies the activation in its
# write-back. Run it as a script (`python examples/tutorial.py`) or cell by cell (`# %%` cells: VS Code, Jupyter
# with jupytext, Spyder). It writes only into `tutorial_out/` next to where it runs.

# %%
from pathlib import Path

import numpy as np

import hls_backend
import onnx_fuse
from hls_backend.resource_report import bar_chart, comparison_table, design_report

MODELS = Path(__file__).resolve().parent.parent / "models"
OUT = Path("tutorial_out")

# %% [markdown]
# ## 1. The model and its test data
# A QKeras CNN on scikit-learn's 8x8 digits (bundled: `models/digits_qkeras.h5`), loaded the way a QKeras user
# does, and 100 held-out digits with their labels.

# %%
from qkeras.utils import load_qmodel

model = load_qmodel(str(MODELS / "digits_qkeras.h5"), compile=False)
data = np.load(MODELS / "digits_qkeras.npz")
x, labels = data["x"], data["labels"]
model.summary()

# %% [markdown]
# ## 2. Fuse, in memory
# `onnx_fuse.fuse` takes the model object (or an `onnx.ModelProto`, or a path), exports it (QKeras to QONNX),
# normalises it, fuses every legal pair and checks parity in onnxruntime on `data` plus 16 random inputs. Nothing is
# written to disk; `result.model` is the fused `onnx.ModelProto`.

# %%
result = onnx_fuse.fuse(model, data=x)
print(result.summary())
fused = result.model

# %% [markdown]
# ## 3. Configure and convert, fused and unfused
# One config drives both designs (its layer names are the unfused graph's). The QKeras quantizers became Quant nodes,
# which set every layer's type: no precision to choose.

# %%
config = hls_backend.config_from_fused_onnx(fused, backend="Vitis")
designs = {
    fuse: hls_backend.convert(fused, output_dir=OUT / name, backend="Vitis", io_type="io_stream", hls_config=config,
                              fuse=fuse)
    for fuse, name in ((True, "fused"), (False, "unfused"))
}

# %% [markdown]
# ## 4. Compile and predict (C simulation with g++)

# %%
predictions = {}
for fuse, design in designs.items():
    design.compile()
    predictions[fuse] = np.asarray(design.predict(np.ascontiguousarray(x))).reshape(len(x), -1)

# %% [markdown]
# ## 5. Accuracy: the model, the unfused design, the fused design

# %%
source = np.asarray(model(x, training=False))
accuracy = {
    "QKeras model": np.mean(source.argmax(axis=1) == labels),
    "hls4ml unfused": np.mean(predictions[False].argmax(axis=1) == labels),
    "hls4ml fused": np.mean(predictions[True].argmax(axis=1) == labels),
}
for name, value in accuracy.items():
    print(f"{name:>15}: {value:.3f}")
print("fused == unfused, bit for bit:", np.array_equal(predictions[True], predictions[False]))

# %% [markdown]
# ## 6. What fusion saves: dataflow processes and FIFOs
# The calibrated FIFO model (io_stream) per layer output, and its picture (`tutorial_out/fifo_bram.png`).

# %%
reports = {fuse: design_report(design, "vitis") for fuse, design in designs.items()}
print(comparison_table(reports[False], reports[True]))
bar_chart(reports[False], reports[True], OUT / "fifo_bram.png")
