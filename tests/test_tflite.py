""".tflite in: the MLPerf Tiny DS-CNN as TFLite (models/make_tflite_models.py), float and int8, converted with
tf2onnx's TFLite converter and checked against TensorFlow's TFLite interpreter; custom / Flex ops and damaged files
refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import MODELS

DSCNN_PAIRS = 9  # the first conv and the 4 depthwise + 4 pointwise convs of the depthwise-separable blocks
# int8: also the logits Dense (MatMul under its weight Quant) -> its output's Quant -> Clip (the zero-point range)
PAIRS = {"float": DSCNN_PAIRS, "int8": DSCNN_PAIRS + 1}


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_dscnn_tflite_fuses_with_parity_against_the_tflite_interpreter(kind: str, tmp_path: Path) -> None:
    from onnx_fuse.pipeline import Options, run
    from onnx_fuse.tflite import output_steps, tflite_to_onnx

    path = MODELS / f"mlperf_dscnn_{kind}.tflite"
    result = run(path, tmp_path / "out.onnx", Options(data=MODELS / "mlperf_dscnn.npz"))
    assert result.source_kind == "tflite" and result.fusion.pairs == PAIRS[kind], result.fusion.by_op
    reference, fused = result.parity
    assert reference.name == "tflite vs onnx" and reference.ok and reference.samples == 32
    assert fused.ok and fused.max_abs_err == 0.0
    step = output_steps(tflite_to_onnx(path))[0]
    if kind == "float":
        assert step == 0.0 and reference.max_abs_err < 1e-5 and reference.atol == 1e-4
    else:  # one output quantization step allowed (tflite.py), no more
        assert 1e-4 < step < 0.01 and reference.atol == pytest.approx(1.001 * step)
        assert reference.max_abs_err <= step * 1.001


def test_the_tflite_reference_tells_float_from_int8() -> None:
    """The interpreter is a real reference: the int8 model's outputs are more than one of its steps away from the
    float model's on the same inputs, so the int8 tolerance would catch a graph computing the wrong thing."""
    from onnx_fuse.tflite import output_steps, tflite_runner, tflite_to_onnx

    x = {"x": np.load(MODELS / "mlperf_dscnn.npz")["x"]}
    y_float = tflite_runner(MODELS / "mlperf_dscnn_float.tflite")(x)[0]
    y_int8 = tflite_runner(MODELS / "mlperf_dscnn_int8.tflite")(x)[0]
    step = output_steps(tflite_to_onnx(MODELS / "mlperf_dscnn_int8.tflite"))[0]
    assert np.abs(y_float - y_int8).max() > 1.001 * step


@pytest.fixture(scope="module")
def foreign_op_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_foreign_op_files(tmp_path_factory.mktemp("tflite"))


def write_foreign_op_files(folder: Path) -> dict[str, Path]:
    """A model with a TensorFlow op TFLite has no builtin for, converted as a Flex op and as a custom op."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 3, 3], tf.float32)])
    def det(x):
        return tf.linalg.det(x)

    files = {}
    for mode in ("flex", "custom"):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([det.get_concrete_function()], det)
        if mode == "flex":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        else:
            converter.allow_custom_ops = True
        files[mode] = folder / f"{mode}.tflite"
        files[mode].write_bytes(converter.convert())
    return files


@pytest.mark.parametrize("mode, message", [
    ("flex", "uses TensorFlow (Flex) ops FlexMatrixDeterminant"),
    ("custom", "uses custom TFLite ops MatrixDeterminant"),
    ("garbage", "not a valid TFLite file"),
    ("truncated", ""),
])
def test_foreign_ops_and_damaged_files_are_refused_in_one_line(mode, message, foreign_op_files, tmp_path, capsys):
    from onnx_fuse.cli import main

    if mode in foreign_op_files:
        path = foreign_op_files[mode]
    else:
        path = tmp_path / f"{mode}.tflite"
        good = (MODELS / "mlperf_dscnn_float.tflite").read_bytes()
        path.write_bytes(np.random.default_rng(0).bytes(200) if mode == "garbage" else good[: len(good) // 3])
    out = tmp_path / "out.onnx"
    code = main([str(path), str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("onnx-fuse: error: ") and message in err[0], err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.hls
def test_dscnn_float_tflite_through_hls_is_bit_exact(tmp_path: Path, capsys) -> None:
    from onnx_fuse.cli import main

    code = main([str(MODELS / "mlperf_dscnn_float.tflite"), str(tmp_path / "out.onnx"), "--samples", "2",
                 "--hls-out", str(tmp_path / "hls"), "--precision", "ap_fixed<32,16>", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bit-exact" in out and f"{DSCNN_PAIRS} of {DSCNN_PAIRS} pairs apply" in out, out
