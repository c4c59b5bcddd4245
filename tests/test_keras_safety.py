"""A model file is data: payloads made with tf-keras, Keras 3 and QKeras themselves (Lambda layers whose code writes a
marker file) and hand-edited configs are refused, exit 2 with one line, before any deserializer runs; the loaders
also run in safe mode on their own; every bundled model still passes the check."""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from conftest import MODELS, REPO
from onnx_fuse import keras_allowlist, keras_loaders
from onnx_fuse.cli import main
from onnx_fuse.errors import InputError
from onnx_fuse.keras_safety import check_config, read_model_config
from onnx_fuse.pipeline import Options, run

qkeras = pytest.importorskip("qkeras", reason="the qkeras extra (qkeras-v3) is not installed")


def touching_lambda(marker: Path) -> Callable:
    """A function whose bytecode, once unmarshalled and called, creates `marker` (its path is a constant of the
    code, so it travels with the serialized bytecode)."""
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")


def tf_keras_payloads(folder: Path, marker: Callable[[str], Path]) -> dict[str, Path]:
    import tf_keras as k

    files = {}
    inp = k.Input((4,))
    model = k.Model(inp, k.layers.Dense(3, activation="relu")(k.layers.Lambda(touching_lambda(marker("tfk")))(inp)))
    for name, suffix in (("tf-keras .h5", ".h5"), ("tf-keras .keras", ".keras")):
        files[name] = folder / f"tfk{suffix}"
        model.save(files[name])
    files["tf-keras .json + weights"] = folder / "tfk.json"
    files["tf-keras .json + weights"].write_text(model.to_json())
    model.save_weights(folder / "tfk_weights.h5")

    inner_in = k.Input((4,))
    inner = k.Model(inner_in, k.layers.Lambda(touching_lambda(marker("nested")))(inner_in), name="inner")
    nested = k.Sequential([k.Input((4,)), inner, k.layers.Dense(2)])
    files["tf-keras .h5, nested sub-model"] = folder / "nested.h5"
    nested.save(files["tf-keras .h5, nested sub-model"])

    seq_in = k.Input((2, 4))
    wrapped = k.layers.TimeDistributed(k.layers.Lambda(touching_lambda(marker("timedistributed"))))(seq_in)
    files["tf-keras .h5, inside TimeDistributed"] = folder / "td.h5"
    k.Model(seq_in, k.layers.Dense(2)(k.layers.Flatten()(wrapped))).save(files["tf-keras .h5, inside TimeDistributed"])
    return files


def keras3_payloads(folder: Path, marker: Callable[[str], Path]) -> dict[str, Path]:
    import keras
    from qkeras import QActivation, QDense, quantized_bits

    files = {}
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Lambda(touching_lambda(marker("k3")))(inp)))
    for name, suffix in (("Keras 3 .h5", ".h5"), ("Keras 3 .keras", ".keras")):
        files[name] = folder / f"k3{suffix}"
        model.save(files[name])

    q = QDense(3, kernel_quantizer=quantized_bits(8, 0, alpha=1), bias_quantizer=quantized_bits(8, 0, alpha=1))
    hidden = keras.layers.Lambda(touching_lambda(marker("qkeras")))(q(inp))
    files["QKeras .h5"] = folder / "qk.h5"
    keras.Model(inp, QActivation("quantized_relu(6,0)")(hidden)).save(files["QKeras .h5"])
    return files


def edit_config(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of a Keras file whose architecture `edit` changed, in the file's own container."""
    if source.suffix == ".json":
        config = json.loads(source.read_text())
        edit(config)
        target.write_text(json.dumps(config))
        shutil.copy(source.with_name(f"{source.stem}_weights.h5"), target.with_name(f"{target.stem}_weights.h5"))
    elif source.suffix == ".keras":
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
            for item in old.infolist():
                data = old.read(item)
                if item.filename == "config.json":
                    config = json.loads(data)
                    edit(config)
                    data = json.dumps(config).encode()
                new.writestr(item, data)
    else:
        import h5py

        shutil.copy(source, target)
        with h5py.File(target, "r+") as handle:
            config = json.loads(handle.attrs["model_config"])
            edit(config)
            handle.attrs["model_config"] = json.dumps(config)
    return target


def layer(config: dict, class_name: str) -> dict:
    """The layer of that class (QKeras layers saved by Keras 3 are named "qkeras>QActivation")."""
    return next(e for e in config["config"]["layers"] if e["class_name"].rpartition(">")[2] == class_name)


def as_os_system(config: dict) -> None:
    """Keras 2's by-name form of a Lambda: `function_type: function` resolves `function` in `module`."""
    lam = layer(config, "Lambda")["config"]
    lam.update(function="system", function_type="function", module="os")


def as_keras1_list(config: dict) -> None:
    """Keras 1 / 2.0 wrote a Sequential's config as a bare list of layers; the Lambda keeps its bytecode."""
    layers = [entry for entry in config["config"]["layers"] if entry["class_name"] != "InputLayer"]
    layers[0]["config"]["batch_input_shape"] = [None, 4]
    config.clear()
    config.update(class_name="Sequential", config=[{"class_name": e["class_name"], "config": e["config"]} for e in layers])


def dense_through(module: str, class_name: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        dense = layer(config, "Dense")
        dense.update(module=module, class_name=class_name, registered_name=None)

    return edit


def initializer_through_builtins(config: dict) -> None:
    layer(config, "Dense")["config"]["kernel_initializer"] = {
        "module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"
    }


def custom_registered_name(config: dict) -> None:
    layer(config, "Dense")["registered_name"] = "Custom>Dense"


def qkeras_quantizer_string(config: dict) -> None:
    """qkeras evaluates quantizer strings by looking the name up in its module's globals and calling it."""
    layer(config, "QActivation")["config"]["activation"] = "set_internal_sigmoid(hard)"


def tf_op_io_write_file(config: dict) -> None:
    layer(config, "Dense")["class_name"] = "TFOpLambda"
    layer(config, "TFOpLambda")["config"].update(function="io.write_file")


EDITED = {
    # name: (payload it edits, the edit, the file it becomes, what the one line says)
    "edited: Lambda by name, os.system": ("tf-keras .json + weights", as_os_system, "os_system.json", "is a Lambda"),
    "edited: Keras 1 list config, bytecode": ("tf-keras .json + weights", as_keras1_list, "k1.json", "is a Lambda"),
    "edited: class through module subprocess": (
        "Keras 3 .keras", dense_through("subprocess", "Popen"), "popen.keras", "is of class 'Popen'"),
    "edited: known class through module os": (
        "Keras 3 .keras", dense_through("os", "Dense"), "os_dense.keras", "references module 'os'"),
    "edited: function through builtins": (
        "Keras 3 .keras", initializer_through_builtins, "exec.keras", "references the function 'exec'"),
    "edited: custom registered name": (
        "Keras 3 .h5", custom_registered_name, "registered.h5", "references the registered name 'Custom>Dense'"),
    "edited: QKeras quantizer string": (
        "QKeras .h5", qkeras_quantizer_string, "qstring.h5", "which QKeras would evaluate"),
    "edited: TFOpLambda io.write_file": (
        "tf-keras .h5", tf_op_io_write_file, "write_file.h5", "calls the TensorFlow function 'io.write_file'"),
}


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    folder = tmp_path_factory.mktemp("payloads")
    markers = folder / "markers"
    markers.mkdir()
    files = {**tf_keras_payloads(folder, lambda n: markers / n), **keras3_payloads(folder, lambda n: markers / n)}
    for name, (source, edit, target, _) in EDITED.items():
        files[name] = edit_config(files[source], folder / target, edit)
    for marker in markers.iterdir():  # building and saving a model calls its Lambda
        marker.unlink()
    return files, markers


PAYLOADS = [
    "tf-keras .h5", "tf-keras .h5, nested sub-model", "tf-keras .h5, inside TimeDistributed", "tf-keras .keras",
    "tf-keras .json + weights", "Keras 3 .h5", "Keras 3 .keras", "QKeras .h5", *EDITED,
]


def expected_text(name: str) -> str:
    return EDITED[name][3] if name in EDITED else "is a Lambda, whose config holds code that would run on loading"


@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_refused_through_the_cli_and_the_api(name, payloads, tmp_path, capsys):
    files, markers = payloads
    out = tmp_path / "out.onnx"
    assert main([str(files[name]), str(out), "-q"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith(f"onnx-fuse: error: refusing {files[name]}: layer '") and "Traceback" not in lines[0]
    assert expected_text(name) in lines[0], lines[0]
    with pytest.raises(InputError, match="refusing .*nothing in the file was run"):
        run(files[name], out, Options())
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert list(markers.iterdir()) == []


@pytest.mark.parametrize("name", ["tf-keras .h5", "tf-keras .json + weights", "Keras 3 .keras", "QKeras .h5",
                                  "edited: Lambda by name, os.system"])
def test_payload_refused_in_a_fresh_process_before_tensorflow_is_imported(name, payloads, tmp_path):
    files, markers = payloads
    code = textwrap.dedent(f"""
        import sys
        from onnx_fuse.cli import main
        code = main([{str(files[name])!r}, {str(tmp_path / 'o.onnx')!r}, "-q"])
        print("tensorflow imported" if "tensorflow" in sys.modules else "tensorflow not imported")
        sys.exit(code)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (2, "tensorflow not imported"), result
    assert len(result.stderr.strip().splitlines()) == 1 and expected_text(name) in result.stderr
    assert list(markers.iterdir()) == [] and not (tmp_path / "o.onnx").exists()


def test_the_payload_is_live_without_onnx_fuse(payloads, tmp_path):
    """The control: tf-keras' own legacy HDF5 loader runs the Lambda's bytecode (so the refusals above matter)."""
    files, markers = payloads
    code = f"import tf_keras; tf_keras.models.load_model({str(files['tf-keras .h5'])!r}, compile=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tmp_path, timeout=300, check=True)
    assert [m.name for m in markers.iterdir()] == ["tfk"]
    (markers / "tfk").unlink()


@pytest.mark.parametrize(
    "name, load",
    [
        ("tf-keras .h5", lambda path: keras_loaders.load_model_file(importlib.import_module("tf_keras"), path)),
        ("Keras 3 .h5", lambda path: keras_loaders.load_model_file(importlib.import_module("keras"), path)),
        ("Keras 3 .keras", lambda path: keras_loaders.load_model_file(importlib.import_module("keras"), path)),
        ("tf-keras .json + weights", lambda path: keras_loaders.load_json_model(
            importlib.import_module("tf_keras"), path.read_text(), path.with_name("tfk_weights.h5"))),
        ("QKeras .h5", lambda path: keras_loaders.load_qkeras(path, ["QDense"])),
    ],
)
def test_every_loader_runs_in_safe_mode_on_its_own(name, load, payloads):
    """The second line of defence, with the config check bypassed: each loader refuses the Lambda's bytecode."""
    files, markers = payloads
    with pytest.raises(Exception, match="(?i)lambda"):
        load(files[name])
    assert list(markers.iterdir()) == []


def test_bundled_models_pass_the_check():
    files = sorted(MODELS.glob("*.h5")) + sorted(MODELS.glob("*.keras"))
    assert len(files) >= 10
    for path in files:
        assert "InputLayer" in check_config(read_model_config(path), path)


def test_tensor_math_tf_op_lambda_loads(tmp_path, capsys):
    """tf-keras writes `tf.nn.relu(x)` in a functional model as a TFOpLambda naming "nn.relu": allowed."""
    import tensorflow as tf
    import tf_keras as k

    inp = k.Input((4,))
    path = tmp_path / "tfop.h5"
    k.Model(inp, tf.nn.relu(k.layers.Dense(3)(inp))).save(path)
    assert "TFOpLambda" in check_config(read_model_config(path), path)
    assert main([str(path), str(tmp_path / "o.onnx"), "-q", "--samples", "2"]) == 0
    assert "fused 1 Dense->Relu pair" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"class_name": "Sequential", "class_name": "Lambda", "config": {}}', "repeats a key"),
        ("[" * 100_000 + "]" * 100_000, "not a Keras architecture JSON"),
    ],
)
def test_configs_that_could_read_two_ways_are_refused(text, expected, tmp_path, capsys):
    (tmp_path / "m.json").write_text(text)
    assert main([str(tmp_path / "m.json"), str(tmp_path / "o.onnx"), "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines


def library_names() -> dict[str, set[str]]:
    """What onnx_fuse/keras_allowlist.py records, computed from the installed libraries."""
    import keras
    import tf_keras

    def public(module, kind) -> set[str]:
        return {name for name, value in vars(module).items() if kind(value) and not name.startswith("_")}

    # tf-keras' loader resolves these too (tf_keras.src.layers.serialization), though no public module exports them
    classes = {"Functional", "BatchNormalizationV1", "BatchNormalizationV2", "GRUV1", "GRUV2", "LSTMV1", "LSTMV2",
               "GRUCellV1", "GRUCellV2", "LSTMCellV1", "LSTMCellV2", "CuDNNGRU", "CuDNNLSTM", "SyncBatchNormalization",
               "TFOpLambda", "SlicingOpLambda"}
    functions = set()
    for library in (keras, tf_keras):
        for sub in ("layers", "initializers", "regularizers", "constraints", "losses", "metrics", "optimizers",
                    "optimizers.schedules", "models"):
            classes |= public(importlib.import_module(f"{library.__name__}.{sub}"), inspect.isclass)
        for sub in ("activations", "losses", "metrics"):
            functions |= public(importlib.import_module(f"{library.__name__}.{sub}"), inspect.isfunction)
    classes |= public(keras.dtype_policies, inspect.isclass) | public(tf_keras.mixed_precision, inspect.isclass)
    registry = set(importlib.import_module("qkeras.quantizer_registry")._QUANTIZERS_REGISTRY._container)
    supported: dict = {}
    importlib.import_module("qkeras.utils")._add_supported_quantized_objects(supported)  # what load_qmodel passes
    return {
        "KERAS_CLASSES": classes,
        "KERAS_FUNCTIONS": functions - {"get", "serialize", "deserialize"},
        "QKERAS_LAYERS": set(supported) - registry,
        # get_quantizer's docstring names these quantization functions besides the registry's classes
        "QKERAS_QUANTIZERS": registry | {"binary_sigmoid", "binary_tanh", "hard_sigmoid", "hard_tanh",
                                         "smooth_sigmoid", "smooth_tanh"},
    }


def test_allowlist_is_what_the_installed_libraries_resolve():
    for name, names in library_names().items():
        recorded = getattr(keras_allowlist, name)
        assert recorded == names, f"{name}: missing {sorted(names - recorded)}, stale {sorted(recorded - names)}"
