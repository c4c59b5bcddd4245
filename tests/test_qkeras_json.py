"""QKeras as architecture JSON + weights .h5 (hls4ml's KerasJson + KerasH5), as Keras 2 / QKeras wrote them and as
Keras 3 / qkeras-v3 writes them: loaded through qkeras-v3 like a QKeras .h5, with the same numbers; the
architecture check stays in front."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import MODELS

pytest.importorskip("qkeras")


def keras2_pair(model_h5: Path, out: Path) -> tuple[Path, Path]:
    """The JSON + weights pair a Keras-2-era QKeras user has: the .h5's `model_config` as X.json and its weights as
    Keras 2's save_weights lays them out (layer groups at the root) in X_weights.h5."""
    arch, weights = out / f"{model_h5.stem}.json", out / f"{model_h5.stem}_weights.h5"
    with h5py.File(model_h5, "r") as source, h5py.File(weights, "w") as target:
        config = source.attrs["model_config"]
        arch.write_text(config.decode() if isinstance(config, bytes) else config)
        for key, value in source["model_weights"].attrs.items():
            target.attrs[key] = value
        for name in source["model_weights"]:
            source.copy(source["model_weights"][name], target, name=name)
    assert "module" not in json.loads(arch.read_text())  # Keras 2 serialization
    return arch, weights


def fused_outputs(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from onnx_fuse.verify import run_onnx

    return run_onnx(model, feeds)[0]


@pytest.mark.parametrize("name, pairs", [
    pytest.param("tiny2_qkeras", 5, marks=pytest.mark.slow),  # QKeras builds tiny2 twice: ~30 s
    ("digits_qkeras", 2),
])
def test_keras2_qkeras_json_and_weights_load_like_the_h5(name: str, pairs: int, tmp_path: Path) -> None:
    """The 2021 tiny2 (QConv2DBatchnorm) and digits_qkeras as JSON + weights: read by qkeras-v3, parity exact against
    QKeras, and the fused graph computes bit for bit what the .h5's does."""
    from onnx_fuse.pipeline import Options, run
    from onnx_fuse.verify import random_feeds

    arch, _ = keras2_pair(MODELS / f"{name}.h5", tmp_path)
    from_json = run(arch, tmp_path / "json.onnx", Options(data=MODELS / f"{name}.npz"))
    from_h5 = run(MODELS / f"{name}.h5", tmp_path / "h5.onnx", Options())
    assert from_json.loader == "qkeras" and from_json.fusion.pairs == pairs
    assert all(p.ok for p in from_json.parity) and from_json.parity[0].max_abs_err == 0.0
    feeds = random_feeds(from_h5.model, 8, 1)
    np.testing.assert_array_equal(fused_outputs(from_json.model, feeds), fused_outputs(from_h5.model, feeds))


def test_keras3_qkeras_json_and_weights(tmp_path: Path) -> None:
    """qkeras-v3's own to_json + save_weights pair, given with --weights."""
    from qkeras.utils import load_qmodel

    from onnx_fuse.cli import main

    model = load_qmodel(str(MODELS / "digits_qkeras.h5"), compile=False)
    arch, weights = tmp_path / "k3.json", tmp_path / "k3.weights.h5"
    arch.write_text(model.to_json())
    model.save_weights(str(weights))
    assert "module" in json.loads(arch.read_text())
    code = main([str(arch), str(tmp_path / "out.onnx"), "--weights", str(weights), "-q", "--json"])
    assert code == 0


def test_qkeras_json_with_a_lambda_is_refused_before_loading(tmp_path: Path, capsys) -> None:
    """The architecture check runs before qkeras-v3 sees the JSON."""
    from onnx_fuse.cli import main

    arch, _ = keras2_pair(MODELS / "digits_qkeras.h5", tmp_path)
    config = json.loads(arch.read_text())
    config["config"]["layers"].append(
        {"class_name": "Lambda", "config": {"name": "evil", "function": ["4wEAAAAAAAAA", None, None],
                                           "function_type": "lambda"}})
    arch.write_text(json.dumps(config))
    code = main([str(arch), str(tmp_path / "out.onnx"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Lambda" in err[0], err


def test_qkeras_json_with_another_models_weights_is_one_line(tmp_path: Path, capsys) -> None:
    from onnx_fuse.cli import main

    arch, _ = keras2_pair(MODELS / "digits_qkeras.h5", tmp_path)
    _, other = keras2_pair(MODELS / "tiny2_qkeras.h5", tmp_path)
    code = main([str(arch), str(tmp_path / "out.onnx"), "--weights", str(other), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("onnx-fuse: error: cannot load QKeras model"), err
