"""The command line end to end on bundled models: summary, JSON, verbosity, exit codes, written file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

from conftest import MODELS, REPO
from onnx_fuse import pipeline
from onnx_fuse.cli import entry, main
from onnx_fuse.export import keras_to_onnx
from onnx_fuse.load import load
from onnx_fuse.normalise import normalise

TINY2 = MODELS / "tiny2_float.h5"


def plain_session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def test_tiny2_all_five_pairs_fused_and_exact_in_plain_onnxruntime(tmp_path, capsys):
    out = tmp_path / "tiny2_fused.onnx"
    assert main([str(TINY2), str(out), "--data", str(MODELS / "tiny2_float.npz"), "-q"]) == 0
    text = capsys.readouterr().out
    assert "fused 5 Conv->Relu pairs" in text
    assert "parity onnx vs fused: max abs err 0 on 116 inputs (exact) ok" in text
    fused = onnx.load(out)
    assert [n.op_type for n in fused.graph.node].count("ConvRelu") == 5
    assert "Relu" not in [n.op_type for n in fused.graph.node]
    # independent check: the file alone, in a plain session, against a freshly normalised unfused graph
    unfused, _ = normalise(keras_to_onnx(load(TINY2).keras_model))
    images = np.load(MODELS / "tiny2_float.npz")["x"][:20]
    a, b = plain_session(unfused), plain_session(str(out))
    for image in images:
        expected = a.run(None, {"image": image[None]})[0]
        assert np.array_equal(b.run(None, {"image": image[None]})[0], expected)


def test_json_summary(tmp_path, capsys):
    out = tmp_path / "d.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(out), "--json", "--samples", "4"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["pairs_fused"] == 2 and report["source"] == "keras"
    assert [p["name"] for p in report["parity"]] == ["keras vs onnx", "onnx vs fused"]
    assert report["parity"][1]["max_abs_err"] == 0.0 and report["parity"][1]["samples"] == 4
    assert report["passes"]["fold_constants"] == ["Add: 1 -> 0", "Mul: 1 -> 0"]
    assert set(report["seconds"]) == {"load", "export", "normalise", "fuse", "verify", "write"}
    assert captured.err == ""  # --json keeps stderr quiet too


def test_verbose_logs_every_stage_and_pass(tmp_path, capsys):
    assert main([str(MODELS / "digits_cnn.h5"), str(tmp_path / "d.onnx"), "-v", "--samples", "2"]) == 0
    err = capsys.readouterr().err
    for line in ("exporting to ONNX with tf2onnx", "fold_constants: Mul: 1 -> 0", "explicit_conv_attrs: MaxPool",
                 "fused 2 pairs {'ConvRelu': 2}:", "onnx vs fused: max abs err 0"):
        assert line in err


def test_no_verify_skips_parity(tmp_path, capsys):
    assert main([str(MODELS / "digits_cnn.h5"), str(tmp_path / "d.onnx"), "--no-verify", "-q"]) == 0
    out = capsys.readouterr().out
    assert "not checked (--no-verify)" in out and "verify" not in out.split("time:")[1]


def without_metadata(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    nodes = list(model.graph.node)
    for node in nodes:
        node.ClearField("metadata_props")  # onnxslim drops the rewriter's rule-name tag; nothing else may differ
    return nodes


def test_a_fused_onnx_file_goes_through_unchanged(tmp_path, capsys):
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(first), "-q"]) == 0
    assert main([str(first), str(second), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fused 0 pairs" in out and "parity input onnx vs onnx" in out
    assert without_metadata(onnx.load(second)) == without_metadata(onnx.load(first))


def test_parity_failure_exits_3_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A fusion that changed the numbers must be caught by the real onnxruntime comparison."""
    real_fuse = pipeline.fuse

    def corrupting_fuse(model):
        fused, report = real_fuse(model)
        weight = next(i for i in fused.graph.initializer if len(i.dims) == 4)
        arr = onnx.numpy_helper.to_array(weight).copy()
        arr.flat[0] += 0.5
        weight.CopyFrom(onnx.numpy_helper.from_array(arr, weight.name))
        return fused, report

    monkeypatch.setattr(pipeline, "fuse", corrupting_fuse)
    out = tmp_path / "d.onnx"
    assert main([str(MODELS / "digits_cnn.h5"), str(out), "-q"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("onnx-fuse: error: parity check failed (onnx vs fused: max abs err")
    assert len(captured.err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_help_documents_exit_codes():
    result = subprocess.run([sys.executable, "-m", "onnx_fuse", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    for code in ("0  fused", "1  internal error", "2  bad input", "3  parity check failed"):
        assert code in result.stdout


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "onnx-fuse"]
    assert script.load() is entry


def test_summary_says_which_pairs_were_left_unfused_and_why(tmp_path, capsys):
    from onnx import helper

    from conftest import conv_init, make_model

    model = make_model(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], name="a", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], name="b", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c2"], ["y"]),
        ],
        [conv_init("w1", 3, 3), conv_init("w2", 3, 3, seed=1)],
        {"x": [1, 3, 8, 8]},
        {"y": [1, 3, 8, 8]},
    )
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    assert main([str(src), str(tmp_path / "o.onnx"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fused 1 Conv->Relu pair " in out
    assert "left unfused: Conv 'b' -> Sigmoid: only Relu, LeakyRelu, Clip are applied bit-exactly in the hls4ml write-back" in out


def fresh_cli(args: list[str]) -> subprocess.CompletedProcess:
    """The CLI in a new process; its last stdout line lists which heavy libraries it imported."""
    code = (
        "import sys\nfrom onnx_fuse.cli import main\ncode = main(sys.argv[1:])\n"
        "print('imported:', sorted(m for m in ('onnx', 'onnxruntime', 'tensorflow', 'hls4ml') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_a_wrong_data_path_is_answered_before_any_heavy_import(tmp_path):
    result = fresh_cli([MODELS / "digits_cnn.h5", tmp_path / "o.onnx", "--data", tmp_path / "missing.npz", "-q"])
    assert result.returncode == 2 and result.stdout.strip() == "imported: []", result
    assert result.stderr == f"onnx-fuse: error: cannot read test data {tmp_path / 'missing.npz'}: No such file or directory\n"
    (tmp_path / "notes.npz").write_text("not numpy")
    result = fresh_cli([MODELS / "digits_cnn.h5", tmp_path / "o.onnx", "--data", tmp_path / "notes.npz", "-q"])
    assert result.returncode == 2 and "is neither a .npy nor a .npz file" in result.stderr


def test_version_names_the_libraries_that_matter():
    result = subprocess.run([sys.executable, "-m", "onnx_fuse", "--version"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    assert result.stdout.startswith("onnx-fuse 0.1.0 (hls4ml 1.3.0, qonnx 1.0.0, onnx 1.23."), result.stdout
