"""The CLI's hls4ml stage for real: fused + unfused projects compiled with g++, C-sim compared, report written."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import MODELS
from hls_backend import project
from onnx_fuse.cli import main
from test_faults import Cli, earlier_output


def attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def test_hls_stage_is_bit_exact_reports_the_saving_and_replaces_an_earlier_output(tmp_path):
    """One real CLI run, as a child process the way a user runs it, into a DIR holding an earlier run's output and a
    user's file: both designs compiled and simulated bit-exact, the report written, the earlier entries replaced,
    the user's file kept, and no process or temp file left behind."""
    cli, hls_dir = Cli(tmp_path), tmp_path / "hls"
    earlier_output(hls_dir)
    cli.watch(hls_dir / "notes.txt")
    run = cli.run(MODELS / "digits_cnn.h5", "d.onnx", "--hls-out", hls_dir, "--report", "--json",
                  "--data", MODELS / "digits_cnn.npz", "--samples", "100", timeout=900)
    assert run.returncode == 0, run.stderr
    # `python -m onnx_fuse` as a user runs it: stderr holds our progress lines only (no library's log lines)
    assert all(line.startswith("onnx-fuse: ") for line in run.stderr.splitlines()), run.stderr
    report = json.loads(run.stdout)  # hls4ml's own prints must not leak into stdout
    hls = report["hls"]
    assert hls["bit_exact"] is True and hls["max_abs_diff"] == 0.0 and hls["samples"] == 200
    assert hls["fused_in_hls"] == 2
    # against the model itself: ap_fixed<16,6> holds this float CNN's values (no warning)
    accuracy = hls["csim_vs_onnx"]
    assert accuracy["samples"] == 200 and accuracy["top1_agree"] >= 196 and accuracy["max_abs_err"] < 0.5
    assert accuracy["far"] is False and accuracy["warning"] is None
    fused, unfused = hls["report"]["fused"], hls["report"]["unfused"]
    assert unfused["processes"] - fused["processes"] == 2
    assert fused["fifo_bram18k"] < unfused["fifo_bram18k"]
    assert (hls_dir / "fused" / "firmware" / "myproject.cpp").exists()
    assert (hls_dir / "unfused" / "firmware" / "myproject.cpp").exists()
    text = (hls_dir / "report.md").read_text()
    assert "removed (fused with Relu_0)" in text
    assert "| vitis | SRL up to 1024 bits (rtl) |" in text
    assert "Whole design" in text and hls["report"]["estimate"]["fused"]["total"]["bram18k"] < unfused["fifo_bram18k"] * 2
    assert (hls_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "d.onnx").exists()
    entries = ["fused", "report.md", "report.png", "unfused"]
    assert sorted(p.name for p in hls_dir.iterdir()) == sorted([".onnx-fuse.json", "notes.txt", *entries])
    assert json.loads((hls_dir / ".onnx-fuse.json").read_text())["entries"] == entries
    assert not (hls_dir / "fused" / "firmware" / "stale.h").exists()
    assert f"OutputDir: {hls_dir / 'fused'}\n" in (hls_dir / "fused" / "hls4ml_config.yml").read_text()
    cli.assert_clean(hls_dir)


def test_hls_options_need_hls_out(tmp_path, capsys):
    assert main([str(MODELS / "digits_cnn.h5"), str(tmp_path / "d.onnx"), "--report"]) == 2
    assert capsys.readouterr().err.strip() == "onnx-fuse: error: --report and --config need --hls-out DIR"


def test_hls_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "hls"
    blocker.write_text("x")
    assert main([str(MODELS / "digits_cnn.h5"), str(tmp_path / "d.onnx"), "--hls-out", str(blocker)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert not (tmp_path / "d.onnx").exists()


def test_config_overrides_merge_into_the_generated_config():
    from hls_backend.hls_stage import merge

    base = {"Model": {"Precision": "ap_fixed<16,6>", "Strategy": "Latency"}, "LayerName": {"Conv_0": {"Precision": {"result": "auto"}}}}
    extra = {"Model": {"Precision": {"default": "ap_fixed<8,6>"}}, "LayerName": {"Conv_0": {"Precision": {"accum": "ap_fixed<14,6>"}}}}
    assert merge(base, extra) == {
        "Model": {"Precision": {"default": "ap_fixed<8,6>"}, "Strategy": "Latency"},
        "LayerName": {"Conv_0": {"Precision": {"result": "auto", "accum": "ap_fixed<14,6>"}}},
    }


def test_unreadable_config_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "cfg.yml"
    bad.write_text("- just\n- a list\n")
    out = tmp_path / "d.onnx"
    code = main([str(MODELS / "digits_cnn.h5"), str(out), "--hls-out", str(tmp_path / "hls"), "--config", str(bad), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "must be a mapping" in err[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def multi_pattern(tmp_path_factory) -> dict:
    """One Keras model and one CLI run with --hls-out serve the depthwise and the residual checks (one pair of
    hls4ml projects instead of two): DepthwiseConv2D -> ReLU, SeparableConv2D -> ReLU, then a residual block
    Conv -> ReLU, Conv -> BN -> Add(skip) -> ReLU. Returns the printed summary, the fused graph and the hls dir."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(inp)
    h = keras.layers.SeparableConv2D(4, 3, activation="relu")(h)
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer="random_normal")(h)
    b = keras.layers.BatchNormalization(
        beta_initializer="random_normal", moving_mean_initializer="random_normal"
    )(keras.layers.Conv2D(4, 3, padding="same")(a))
    out = keras.layers.ReLU()(keras.layers.Add()([b, a]))
    tmp = tmp_path_factory.mktemp("multi")
    src, fused = tmp / "multi.keras", tmp / "multi.onnx"
    keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(out))).save(src)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([str(src), str(fused), "--hls-out", str(tmp / "hls"), "-q", "--samples", "64",
                     "--precision", "ap_fixed<14,6,AP_RND,AP_SAT>"])
    assert code == 0
    return {"text": stdout.getvalue(), "fused": onnx.load(fused), "hls": tmp / "hls"}


# Slow: by default the depthwise family's write-back is compiled by test_activations_hls (digits_act1d's
# depthwise Conv1D -> ReLU6 pair) and an unfused residual Add -> ReLU by test_torch_hls (the dynamo ResNet block).
@pytest.mark.slow
def test_depthwise_pairs_apply_their_relu_in_the_write_back(multi_pattern):
    """Keras DepthwiseConv2D/SeparableConv2D: ONNX fuses both pairs, and hls4ml applies both ReLUs in the write-back
    (depthwise convs cast through their mult config too)."""
    text, fused, hls = multi_pattern["text"], multi_pattern["fused"], multi_pattern["hls"]
    fused_convs = [n for n in fused.graph.node if n.op_type == "ConvRelu"]
    # 3 pairs: the depthwise conv, the separable's pointwise conv, the residual block's first conv
    assert len(fused_convs) == 3 and sum(attribute(n, "group", 1) > 1 for n in fused_convs) == 1
    assert "fused 3 Conv->Relu pairs" in text and "bit-exact on 64 inputs" in text
    assert "hls4ml: 3 of 3 pairs apply their activation in the layer's write-back" in text
    assert "keeps its" not in text
    fused_relus = [name for call, name in project.layer_calls(hls / "fused") if call == "relu"]
    unfused_relus = [name for call, name in project.layer_calls(hls / "unfused") if call == "relu"]
    assert len(unfused_relus) == 4 and len(fused_relus) == 1  # only the residual block's Add -> ReLU stays


@pytest.mark.slow
def test_residual_block_converts_bit_exact_with_only_the_clean_pair_fused(multi_pattern):
    """Conv -> BN -> Add(skip) -> Relu must stay unfused; the Conv -> Relu before it fuses; hls4ml agrees bit for bit."""
    text, fused = multi_pattern["text"], multi_pattern["fused"]
    producer = {out: node for node in fused.graph.node for out in node.output}
    (add,) = [n for n in fused.graph.node if n.op_type == "Add"]
    assert sorted(producer[name].op_type for name in add.input) == ["Conv", "ConvRelu"]  # BN folded, not fused
    assert producer[add.output[0]].op_type == "Add" and any(
        n.op_type == "Relu" and n.input[0] == add.output[0] for n in fused.graph.node
    )
    assert "hls4ml C-sim fused vs unfused: bit-exact on 64 inputs" in text


@pytest.mark.slow  # the spellings are normalised to Relu (test_normalise); this re-proves the hls side on them
def test_max_and_clip_spellings_reach_hls4ml_as_fused_relus(tmp_path, capsys):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    one = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], **one),
            helper.make_node("Max", ["c1", "zero"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], **one),
            helper.make_node("Clip", ["c2", "zero"], ["y"]),
        ],
        "spellings",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6, 6])],
        [
            numpy_helper.from_array((rng.standard_normal((4, 2, 3, 3)) * 0.5).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b1"),
            numpy_helper.from_array((rng.standard_normal((3, 4, 3, 3)) * 0.5).astype(np.float32), "w2"),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    src = tmp_path / "spell.onnx"
    src.write_bytes(model.SerializeToString())
    code = main([str(src), str(tmp_path / "out.onnx"), "--hls-out", str(tmp_path / "hls"), "-q", "--samples", "64",
                 "--io-type", "io_parallel"])
    captured = capsys.readouterr()
    text = captured.out
    assert code == 0, captured.err
    assert "fused 2 Conv->Relu pairs" in text and "bit-exact on 64 inputs" in text
    assert "hls4ml: 2 of 2 pairs apply their activation" in text


def test_a_layer_hls4ml_lacks_is_one_clear_error(tmp_path, capsys):
    from onnx import TensorProto, helper

    from conftest import conv_init

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Sin", ["r"], ["y"])],
        "sin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6, 6])], [conv_init("w", 3, 3)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    src, out = tmp_path / "sin.onnx", tmp_path / "out.onnx"
    src.write_bytes(model.SerializeToString())
    assert main([str(src), str(out), "--hls-out", str(tmp_path / "hls"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onnx-fuse: error: hls4ml cannot convert this graph:") and "Sin" in err[0]
    assert not out.exists()


@pytest.mark.slow  # two pairs of compiles and a trace: ~100 s of CPU
def test_a_design_far_from_the_model_names_the_layer_and_the_precision(tmp_path, capsys):
    """ap_fixed<8,2> holds |x| < 2: the MLP's first ReLU overflows (hls4ml widens the Dense's own result type), C-sim
    lands far from onnxruntime, and the summary names that layer from hls4ml's trace and the precision that holds
    every layer's values; that precision then brings the design back."""
    args = [str(MODELS / "digits_mlp.h5"), str(tmp_path / "m.onnx"), "--data", str(MODELS / "digits_mlp.npz"),
            "--io-type", "io_parallel", "-q"]
    assert main([*args, "--hls-out", str(tmp_path / "narrow"), "--precision", "ap_fixed<8,2>"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if "C-sim vs onnxruntime" in line)
    agree, samples = map(int, line.rsplit("top-1 agreement ", 1)[1].split("/"))
    assert agree < 0.9 * samples, line
    warning = next(line for line in text.splitlines() if "hls4ml: warning:" in line)
    assert "Relu_0 is the first layer whose hls4ml trace leaves the ONNX values" in warning, warning
    assert "its type ap_fixed<8,2> holds 2" in warning, warning
    suggested = warning.split("--precision '", 1)[1].split("'", 1)[0]
    assert main([*args, "--hls-out", str(tmp_path / "wide"), "--precision", suggested]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if "C-sim vs onnxruntime" in line)
    agree, samples = map(int, line.rsplit("top-1 agreement ", 1)[1].split("/"))
    assert agree >= 0.95 * samples and "hls4ml: warning" not in text, text


def test_far_warning_on_tiny2_at_the_default_precision(tmp_path):
    """tiny2 (float) at hls4ml's ap_fixed<16,6>: its second conv's values reach 70 on the real images, beyond the
    type's 32 (onnxruntime and a hand-made trace, no compile: the design-level check is the slow test above)."""
    from hls_backend.accuracy import Trace, csim_vs_onnx, far_warning, layer_values
    from onnx_fuse.pipeline import Options, run

    fused = run(MODELS / "tiny2_float.h5", tmp_path / "t.onnx", Options(verify=False)).model
    x = np.load(MODELS / "tiny2_float.npz")["x"][:20]
    warning = far_warning(fused, x, "ap_fixed<16,6>")
    assert "Conv_1 is the first layer whose values leave ap_fixed<16,6>" in warning, warning
    assert "--precision 'ap_fixed<18,8>'" in warning
    # far with nothing overflowing: the fractional bits are named instead
    assert "no layer's values leave ap_fixed<18,8>" in far_warning(fused, x, "ap_fixed<18,8>")
    assert "rounding to its 2 fractional bits" in far_warning(fused, x, "ap_fixed<10,8>")
    assert "--precision 'ap_fixed<14,8>'" in far_warning(fused, x, "ap_fixed<10,8>")

    # A trace (hls4ml's names and channels-last layout; a Dense holds its bias Add) that equals onnxruntime's values
    # departs nowhere; one whose Relu_0 is clipped is named, though it does not overflow the default type.
    layers = layer_values(fused, x)
    assert list(layers.values)[1:4] == ["Conv_0", "Relu_0", "Conv_1"], list(layers.values)  # after the input transpose
    assert layers.consumer["MatMul_0"] == "Add_0"
    traced = {("Conv2D_" if name.startswith("Conv") else "") + name: np.moveaxis(v, 1, -1) if v.ndim == 4 else v
              for name, v in layers.values.items() if not name.startswith(("MatMul", "Add"))}
    traced["Dense_MatMul_0"] = layers.values["Add_0"]
    same = Trace(traced, {"Relu_0": "ap_fixed<16,6>"})
    assert "Conv_1 is the first layer whose values leave" in far_warning(fused, x, "ap_fixed<16,6>", same)
    traced["Relu_0"] = np.clip(traced["Relu_0"], 0, 0.5)  # as if Relu_0's type held 0.5
    warning = far_warning(fused, x, "ap_fixed<16,6>", Trace(traced, {"Relu_0": "ap_ufixed<4,0>"}))
    assert "Relu_0 is the first layer whose hls4ml trace leaves the ONNX values" in warning, warning
    assert "its type ap_ufixed<4,0> holds 1" in warning and "--precision 'ap_fixed<18,8>'" in warning
    traced["Relu_0"], traced["Conv2D_Conv_0"] = layers.values["Relu_0"], -traced["Conv2D_Conv_0"]
    warning = far_warning(fused, x, "ap_fixed<16,6>", Trace(traced, {}))
    assert "Conv2D_Conv_0 is the first layer whose hls4ml trace leaves" in warning, warning

    y = np.array([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
    assert csim_vs_onnx(y, y).far is False and csim_vs_onnx(y, y).top1_agree == 2
    swapped = csim_vs_onnx(y[::-1], y)
    assert (swapped.top1_agree, swapped.max_abs_err, swapped.far) == (0, 3.0, True)
