"""Fault injection: every failure of the CLI (bad input, a library refusing the graph, a full disk, an immutable file,
signals at start-up, during export and during the hls stage, --hls-out collisions) ends with its documented exit
code and one stderr line (with -q), no traceback, no temp files, no orphan processes, the input unchanged and no
user file touched.

The CLI runs as a real child process with a private TMPDIR and a tag in its environment: every process it starts
(C-sim children, g++) inherits the tag, so /proc tells whether any survived.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import MODELS, REPO, conv_init, make_model

# onnxruntime's import writes $TMPDIR/.ses (a persistent id file it reuses): not a temp file of ours.
LIBRARY_TMP_FILES = {".ses"}
PROGRESS = " ..."  # progress lines (hidden by -q) end like this: "onnx-fuse: loading x.h5 ..."


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


class Cli:
    """One CLI invocation at a time, in tmp, with everything needed to check what it left behind."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir()
        self.tag = uuid.uuid4().hex
        self.watched: dict[Path, tuple] = {}

    def watch(self, *paths: Path) -> None:
        """Files and trees that must come out byte for byte (and mtime) unchanged."""
        for path in paths:
            self.watched[path] = snapshot(path)

    def start(self, *args: str | Path) -> subprocess.Popen:
        env = dict(os.environ, TMPDIR=str(self.tmpdir), FAULT_TAG=self.tag, PYTHONPATH=str(REPO))
        # A shell's background job inherits SIGINT ignored, which the CLI (rightly) keeps: start from the default.
        return subprocess.Popen(
            [sys.executable, "-m", "onnx_fuse", *map(str, args)], cwd=self.tmp, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def run(self, *args: str | Path, timeout: float = 300) -> Run:
        start = time.monotonic()
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out, err, time.monotonic() - start)

    def tagged_pids(self) -> list[int]:
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if f"FAULT_TAG={self.tag}".encode() in environ.read_bytes():
                    found.append(int(environ.parent.name))
            except OSError:  # gone, or a zombie
                pass
        return found

    def assert_clean(self, *dirs: Path) -> None:
        """No process the run started is alive, no temp file is left, every watched path is unchanged."""
        deadline = time.monotonic() + 10  # killed grandchildren are reaped by init, not instantly
        while self.tagged_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.tagged_pids() == [], "orphan processes"
        assert {p.name for p in self.tmpdir.iterdir()} <= LIBRARY_TMP_FILES, list(self.tmpdir.iterdir())
        for folder in (self.tmp, *dirs):
            if folder.is_dir():
                leftovers = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".onnx-fuse-staging-" in p.name]
                assert leftovers == []
        for path, before in self.watched.items():
            assert snapshot(path) == before, f"{path} changed"


def snapshot(path: Path) -> tuple:
    if path.is_dir():
        return tuple((str(p.relative_to(path)), snapshot(p)) for p in sorted(path.rglob("*")) if not p.is_dir())
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_mode


def assert_one_error(run: Run, code: int, *words: str) -> str:
    assert run.returncode == code, run.stderr
    assert len(run.lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    line = run.lines[0]
    assert line.startswith("onnx-fuse: "), line
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def conv_relu(tmp: Path, channels: int = 2, size: int = 6, batch: int = 1, name: str = "conv.onnx") -> Path:
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["y"])],
        [conv_init("w", channels, 1)],
        {"x": [batch, 1, size, size]},
        {"y": [batch, channels, size - 2, size - 2]},
    )
    return save(model, tmp / name)


def with_bomb(tmp: Path, op: str) -> Path:
    """Conv->Relu plus a 160 GB (ConstantOfShape) or 1.4 TB (Expand) tensor summed into the output."""
    if op == "ConstantOfShape":
        bomb = [helper.make_node("ConstantOfShape", ["shape"], ["big"])]
        shape = [200_000, 200_000]
    else:
        bomb = [helper.make_node("Expand", ["x", "shape"], ["big"])]
        shape = [100_000, 100_000, 6, 6]
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
            helper.make_node("Relu", ["c"], ["r"]),
            *bomb,
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Add", ["r", "total"], ["y"]),
        ],
        [conv_init("w", 2, 1), numpy_helper.from_array(np.array(shape, np.int64), "shape")],
        {"x": [1, 1, 6, 6]},
        {"y": [1, 2, 4, 4]},
    )
    return save(model, tmp / f"bomb_{op}.onnx")


def inputs(n: int = 3) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((n, 1, 6, 6)).astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


# ---------------------------------------------------------------- exit codes and arguments


@pytest.mark.parametrize(
    "args, words",
    [
        (["--seed", "-1"], ["--seed"]),
        (["--samples", "0"], ["--samples"]),
        (["--samples", "many"], ["--samples", "invalid int"]),
        (["--samples", str(10**9)], ["memory budget", "1000000000 inputs"]),
        (["--force"], ["--hls-out"]),
    ],
)
def test_bad_arguments_are_one_line_exit_2(cli, tmp_path, args, words):
    model = conv_relu(tmp_path)
    cli.watch(model)
    run = cli.run(model, "out.onnx", "-q", *args)
    assert_one_error(run, 2, *words)
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


def test_declared_input_over_the_memory_budget_is_refused_before_allocating(cli, tmp_path):
    model = conv_relu(tmp_path, size=1_000_000, name="huge.onnx")  # one input alone is 4 TB
    run = cli.run(model, "out.onnx", "-q")
    assert_one_error(run, 2, "memory budget")
    cli.assert_clean()


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand"])
def test_allocation_bomb_is_onnxruntime_refusing_the_graph(cli, tmp_path, op):
    model = with_bomb(tmp_path, op)
    cli.watch(model)
    run = cli.run(model, "out.onnx", "-q")
    line = assert_one_error(run, 2, "as given does not run in onnxruntime", "Failed to allocate memory", op)
    assert "\x1b[" not in run.stderr and "onnxruntime_src" not in line  # no ORT colour log, no C++ location
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


@pytest.mark.parametrize("batch", [4, 0])
def test_fixed_batch_never_ends_as_an_internal_error(cli, tmp_path, batch):
    """A fixed batch of 4 (freed by normalise when samples stay apart) or 0 (nothing onnxruntime can run)."""
    model = conv_relu(tmp_path, batch=batch, name="batch.onnx")
    run = cli.run(model, "out.onnx", "-q")
    assert run.returncode in (0, 2), run.stderr
    if run.returncode == 2:
        assert_one_error(run, 2)
    cli.assert_clean()


def test_library_failure_boundary():
    """Raised inside a library on the user's graph: InputError naming stage and library. Raised by our own code:
    unchanged, so the CLI reports an internal error (exit 1)."""
    from onnx_fuse.errors import InputError, library_failures_are_input_errors
    from onnx_fuse.verify import compare

    with pytest.raises(InputError, match=r"^normalise: onnx failed on this graph: "):
        with library_failures_are_input_errors("normalise"):
            onnx.checker.check_model(onnx.ModelProto(ir_version=3))
    with pytest.raises(AttributeError):
        with library_failures_are_input_errors("verify"):
            compare("x", [np.zeros(2)], [None], 0.0, 0.0)  # our bug: None has no .shape, raised in verify.py
    with pytest.raises(InputError, match="out of memory"):
        with library_failures_are_input_errors("verify"):
            raise MemoryError("Unable to allocate 116. TiB")


def test_old_ir3_model_never_ends_as_an_internal_error(cli, tmp_path):
    """IR 3 / opset 6 (initializers listed as graph inputs) once crashed onnxslim: converted, or refused as input."""
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["y"])],
        [conv_init("w", 2, 1)],
        {"x": [1, 1, 6, 6], "w": [2, 1, 3, 3]},
        {"y": [1, 2, 4, 4]},
    )
    model.ir_version, model.opset_import[0].version = 3, 6
    path = save(model, tmp_path / "old.onnx")
    run = cli.run(path, "out.onnx", "-q")
    assert run.returncode in (0, 2), run.stderr
    if run.returncode == 2:
        assert_one_error(run, 2)
    cli.assert_clean()


# ---------------------------------------------------------------- --data


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_non_regular_data_file_is_refused_without_blocking(cli, tmp_path, kind):
    model = conv_relu(tmp_path)
    if kind == "fifo":
        data = tmp_path / "x.npy"
        os.mkfifo(data)
    elif kind == "dev_zero":
        data = tmp_path / "zero.npy"
        data.symlink_to("/dev/zero")
    else:
        data = tmp_path / "dir.npz"
        data.mkdir()
    run = cli.run(model, "out.onnx", "-q", "--data", data, timeout=120)
    assert_one_error(run, 2, "not a regular file")
    cli.assert_clean()


@pytest.mark.parametrize(
    "members, words",
    [
        ({"x.npy": npy_bytes(np.array([None] * 3, dtype=object))}, ["dtype object"]),
        ({"x.npy": pickle.dumps(inputs())}, ["not a readable .npy array"]),
        ({"x.npy": npy_bytes(inputs().astype(np.complex64))}, ["complex64"]),
        ({"x.npy": npy_bytes(np.zeros((3, 1, 6, 6), "datetime64[s]"))}, ["datetime64"]),
        ({"x.npy": npy_bytes(np.full((3, 1, 6, 6), "a"))}, ["<U1"]),
        ({"x.npy": npy_bytes(np.zeros((3, 1, 6, 6), [("a", "f4")]))}, ["('a', '<f4')"]),
        ({"x.npy": npy_bytes(inputs().astype(np.float64) * 1e300)}, ["float32 cannot hold"]),
    ],
    ids=["object", "pickle", "complex", "datetime", "string", "structured", "overflow"],
)
def test_unusable_npz_member_is_one_line(cli, tmp_path, members, words):
    model, data = conv_relu(tmp_path), tmp_path / "data.npz"
    with zipfile.ZipFile(data, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    cli.watch(model, data)
    run = cli.run(model, "out.onnx", "-q", "--data", data)
    assert_one_error(run, 2, "test data", *words)
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


def test_bad_members_no_input_needs_are_never_read(cli, tmp_path):
    model, data = conv_relu(tmp_path), tmp_path / "data.npz"
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("x.npy", npy_bytes(inputs(3)))
        archive.writestr("labels.npy", npy_bytes(np.array([{"a": 1}], dtype=object)))
        archive.writestr("notes.npy", pickle.dumps({"a": 1}))
    run = cli.run(model, "out.onnx", "-q", "--data", data, "--samples", "2")
    assert run.returncode == 0, run.stderr
    assert "on 5 inputs" in run.stdout  # 3 real + 2 random
    cli.assert_clean()


def test_terabyte_header_in_a_small_npz_is_refused_before_reading(cli, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1, 6, 6)})
    data = tmp_path / "bomb.npz"
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(1000))
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--data", data)
    assert_one_error(run, 2, "memory budget")
    cli.assert_clean()


# ---------------------------------------------------------------- non-finite values


def test_nan_and_inf_in_data_agree_and_are_counted(cli, tmp_path):
    x = inputs(3)
    x[0, 0, 0, 0], x[1, 0, 2, 2] = np.nan, np.inf
    data = tmp_path / "x.npy"
    np.save(data, x)
    model = conv_relu(tmp_path)
    run = cli.run(model, "out.onnx", "-q", "--data", data, "--json")
    assert run.returncode == 0, run.stderr
    parity = json.loads(run.stdout)["parity"]
    # Expected from numpy: the 3x3 windows holding the NaN or the inf give NaN or +-inf (inf * 0-sum terms, inf - inf),
    # and a ReLU keeps NaN and +inf (max(-inf, 0) is 0).
    w = numpy_helper.to_array(onnx.load(model).graph.initializer[0]).astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(x[:, 0].astype(np.float64), (3, 3), axis=(1, 2))
    with np.errstate(invalid="ignore"):
        expected = np.count_nonzero(~np.isfinite(np.maximum(np.einsum("nijkl,ckl->ncij", windows, w[:, 0]), 0)))
    assert expected == 9
    assert [p["nonfinite"] for p in parity] == [expected, expected]
    assert all(p["ok"] and p["max_abs_err"] == 0 for p in parity)
    assert "9 non-finite output values) ok" in cli.run(model, "out.onnx", "-q", "--data", data).stdout


def test_keras_and_onnxruntime_disagree_on_nan_and_say_so(cli, tmp_path):
    """TensorFlow maps a NaN input of digits_cnn to huge finite logits (~1e38), onnxruntime propagates NaN: a real
    difference, reported as such (exit 3), not as a false "max abs err nan"."""
    x = np.load(MODELS / "digits_cnn.npz")["x"][:4].copy()
    x[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    run = cli.run(MODELS / "digits_cnn.h5", "out.onnx", "-q", "--data", "x.npy", "--samples", "1")
    assert_one_error(run, 3, "keras vs onnx: max abs err inf", "10 non-finite output values, not the same NaN/inf")
    cli.assert_clean()


def test_compare_treats_identical_non_finite_values_as_equal():
    from onnx_fuse.verify import compare

    e = np.array([[np.nan, np.inf, -np.inf, 1.0]], np.float32)
    assert compare("same", [e], [e.copy()], 0.0, 0.0).ok
    assert compare("same", [e], [e.copy()], 0.0, 0.0).nonfinite == 3
    for other in (1.0, -np.inf, np.nan):
        a = e.copy()
        a[0, 1] = other  # +inf against a number, -inf or NaN
        result = compare("different", [e], [a], 1e-4, 1e-4)
        assert not result.ok and result.max_abs_err == np.inf


def test_graph_that_overflows_to_inf_passes_parity(cli, tmp_path):
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["y"])],
        [numpy_helper.from_array(np.full((2, 1, 3, 3), 1e38, np.float32), "w")],
        {"x": [1, 1, 6, 6]},
        {"y": [1, 2, 4, 4]},
    )
    run = cli.run(save(model, tmp_path / "overflow.onnx"), "out.onnx", "-q", "--samples", "4", "--json")
    assert run.returncode == 0, run.stderr
    parity = json.loads(run.stdout)["parity"]
    assert parity[1]["nonfinite"] > 0 and parity[1]["ok"]


# ---------------------------------------------------------------- the output file


def test_new_output_follows_the_umask_and_a_replaced_one_keeps_its_mode(tmp_path):
    from onnx_fuse.output import write_atomic

    model = onnx.load(conv_relu(tmp_path))
    old = os.umask(0o027)
    try:
        write_atomic(model, tmp_path / "new.onnx")
        (tmp_path / "kept.onnx").write_bytes(b"old")
        os.chmod(tmp_path / "kept.onnx", 0o604)
        write_atomic(model, tmp_path / "kept.onnx")
    finally:
        os.umask(old)
    assert (tmp_path / "new.onnx").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "kept.onnx").stat().st_mode & 0o777 == 0o604
    assert onnx.load(tmp_path / "kept.onnx") == model


@pytest.fixture
def small_filesystem(tmp_path):
    """A 64 KiB tmpfs: a real ENOSPC from the kernel. Needs mount rights (root), else skipped."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_is_exit_2_and_leaves_no_partial_file(cli, tmp_path, small_filesystem):
    model = conv_relu(tmp_path, channels=4000)  # 144 KB of weights: more than the filesystem holds
    user = small_filesystem / "notes.txt"
    user.write_text("mine")
    cli.watch(model, user)
    run = cli.run(model, small_filesystem / "out.onnx", "-q")
    assert_one_error(run, 2, "cannot write", "No space left on device")
    assert sorted(p.name for p in small_filesystem.iterdir()) == ["notes.txt"]
    cli.assert_clean(small_filesystem)


def test_full_disk_during_the_hls_stage_leaves_dir_as_it_was(cli, tmp_path, small_filesystem):
    """hls4ml's project (ap_types alone is megabytes) cannot fit: the C-sim child fails, staging is removed."""
    out = small_filesystem / "hls"
    out.mkdir()
    (out / ".onnx-fuse.json").write_text(json.dumps({"written_by": "onnx-fuse", "entries": []}))
    (out / "notes.txt").write_text("the user's\n")
    cli.watch(out)
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--samples", "2", "--hls-out", out, timeout=900)
    assert_one_error(run, 2, "C-sim of the", "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == [".onnx-fuse.json", "notes.txt"]
    cli.assert_clean(out)


@pytest.fixture
def immutable(tmp_path):
    path = tmp_path / "out.onnx"
    path.write_bytes(b"an earlier result")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here (needs root and ext4/xfs/btrfs)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_immutable_existing_output_is_refused_before_any_work(cli, tmp_path, immutable):
    model = conv_relu(tmp_path)
    cli.watch(model, immutable)
    run = cli.run(model, immutable, "-q")
    assert_one_error(run, 2, "immutable")
    cli.assert_clean()


# ---------------------------------------------------------------- --hls-out collisions (all refused up front)


@pytest.fixture
def user_dir(tmp_path) -> Path:
    folder = tmp_path / "mine"
    (folder / "ap_types").mkdir(parents=True)
    (folder / "ap_types" / "my_header.h").write_text("// mine\n")
    (folder / "report.md").write_text("my report\n")
    return folder


def test_hls_out_that_is_the_output_is_refused_up_front(cli, tmp_path):
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--hls-out", "out.onnx")
    assert_one_error(run, 2, "would overwrite the output")
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


def test_non_empty_foreign_hls_out_is_refused_without_force(cli, tmp_path, user_dir):
    cli.watch(user_dir)
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--hls-out", user_dir)
    assert_one_error(run, 2, "not empty", "--force")
    cli.assert_clean(user_dir)


def test_a_users_file_named_like_an_output_entry_is_never_replaced_even_with_force(cli, tmp_path, user_dir):
    (user_dir / "report.md").unlink()
    (user_dir / "fused").write_text("a file, not a project\n")
    cli.watch(user_dir)
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--hls-out", user_dir, "--force")
    assert_one_error(run, 2, "fused exists and onnx-fuse did not write it")
    assert run.seconds < 60  # refused before load/verify/hls, not after a minute of work
    cli.assert_clean(user_dir)


def test_config_that_is_a_fifo_is_refused_up_front(cli, tmp_path):
    config = tmp_path / "cfg.yml"
    os.mkfifo(config)
    run = cli.run(conv_relu(tmp_path), "out.onnx", "-q", "--hls-out", "h", "--config", config, timeout=120)
    assert_one_error(run, 2, "not a regular file")
    cli.assert_clean()


def earlier_output(folder: Path) -> None:
    """What an earlier run left: its manifest and entries, plus the user's own file next to them."""
    for name in ("fused", "unfused"):
        (folder / name / "firmware").mkdir(parents=True)
        (folder / name / "firmware" / "stale.h").write_text("// old\n")
    (folder / "report.md").write_text("old report\n")
    (folder / ".onnx-fuse.json").write_text(json.dumps({"written_by": "onnx-fuse", "entries": ["fused", "report.md", "unfused"]}))
    (folder / "notes.txt").write_text("the user's\n")


def test_earlier_output_is_replaced_entry_by_entry_and_the_users_file_kept(tmp_path):
    """The last step of every hls run (test_cli_hls makes a real one over an earlier output): entries the earlier
    run wrote are replaced, or removed when this run does not write them (report.md without --report); the
    user's file stays as it was."""
    from hls_backend.hls_stage import STAGING_PREFIX, install

    out = tmp_path / "hls"
    earlier_output(out)
    notes = snapshot(out / "notes.txt")
    staging = out / f"{STAGING_PREFIX}run"
    for name in ("fused", "unfused"):
        (staging / name / "firmware").mkdir(parents=True)
        (staging / name / "firmware" / "myproject.cpp").write_text("// new\n")
    install(staging, out)
    assert sorted(p.name for p in out.iterdir()) == [".onnx-fuse.json", "fused", "notes.txt", "unfused"]
    assert json.loads((out / ".onnx-fuse.json").read_text())["entries"] == ["fused", "unfused"]
    assert sorted(p.name for p in (out / "fused" / "firmware").iterdir()) == ["myproject.cpp"]
    assert snapshot(out / "notes.txt") == notes


# ---------------------------------------------------------------- signals


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def interrupted(proc: subprocess.Popen, sig: signal.Signals, timeout: float = 30) -> Run:
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out, err, time.monotonic() - start)


def assert_interrupted(run: Run, sig: signal.Signals) -> None:
    assert run.returncode == 128 + sig, run.stderr
    assert "Traceback" not in run.stderr
    ours = [line for line in run.lines if not line.endswith(PROGRESS)]
    assert ours == [f"onnx-fuse: interrupted by {sig.name}: stopped, no output written"], run.stderr


@pytest.mark.parametrize("sig, delay", [(signal.SIGINT, 1.0), (signal.SIGTERM, 0.5), (signal.SIGTERM, 2.0)])
def test_signal_at_start_up(cli, tmp_path, sig, delay):
    """During the imports (TensorFlow, onnxruntime take seconds): the Ctrl-C that used to print a 27-51-line
    traceback. (A signal inside `import onnxruntime` reaches us as pybind11's "ImportError: initialization failed".)"""
    shutil.copy(MODELS / "digits_cnn.h5", tmp_path / "model.h5")
    cli.watch(tmp_path / "model.h5")
    proc = cli.start("model.h5", "out.onnx", "-q")
    time.sleep(delay)
    run = interrupted(proc, sig)
    assert_interrupted(run, sig)
    assert len(run.lines) == 1
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


def test_a_signal_whose_exception_python_dropped_still_stops_the_run(tmp_path, monkeypatch, capsys):
    """Python drops an exception raised inside a weakref callback or __del__ ("Exception ignored in ..."): a SIGTERM
    landing in importlib's module-lock callback during start-up once let the run finish, exit 0 and write its
    output. Here the signal lands in a __del__ during the fuse stage: still exit 143, one line, no output."""
    import onnx_fuse.pipeline as pipeline
    from onnx_fuse.cli import main

    class SignalledWhileDeleted:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs (and raises) inside __del__

    real_fuse = pipeline.fuse

    def fuse(model):
        SignalledWhileDeleted()
        return real_fuse(model)

    monkeypatch.setattr(pipeline, "fuse", fuse)
    out = tmp_path / "out.onnx"
    code = main([str(conv_relu(tmp_path)), str(out), "-q"])
    assert code == 143
    assert capsys.readouterr().err.splitlines() == ["onnx-fuse: interrupted by SIGTERM: stopped, no output written"]
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "conv.onnx"]


def test_a_signal_while_the_summary_prints_says_the_output_is_written(tmp_path, monkeypatch, capsys):
    """The output is in place before the summary prints (stdout may be a pipe nobody reads): a signal then stops the
    printing and says so, the output stays."""
    import onnx_fuse.cli as cli_module

    real_summary = cli_module.summary

    def summary(result):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_summary(result)

    monkeypatch.setattr(cli_module, "summary", summary)
    out = tmp_path / "out.onnx"
    assert cli_module.main([str(conv_relu(tmp_path)), str(out), "-q"]) == 143
    assert capsys.readouterr().err.splitlines() == [f"onnx-fuse: interrupted by SIGTERM after writing {out}"]
    onnx.checker.check_model(onnx.load(out))


def test_a_signal_while_the_interpreter_shuts_down_leaves_a_finished_run_finished(tmp_path):
    """After the summary, TensorFlow and onnxruntime take a second to shut down: a signal then (here from an atexit
    callback) must not turn a finished run's exit 0 into "killed by SIGTERM"."""
    code = ("import atexit, os, signal; atexit.register(os.kill, os.getpid(), signal.SIGTERM); "
            "from onnx_fuse.cli import entry; entry()")
    model, out = conv_relu(tmp_path), tmp_path / "out.onnx"
    run = subprocess.run([sys.executable, "-c", code, str(model), str(out), "-q"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert run.returncode == 0, (run.returncode, run.stderr)
    assert run.stderr == "" and out.exists()


def test_a_library_error_caused_by_a_signal_is_the_signal():
    from onnx_fuse.errors import Interrupted, interruption

    try:
        try:
            raise Interrupted(signal.SIGTERM)
        except Interrupted as exc:
            raise ImportError("initialization failed") from exc
    except ImportError as wrapped:
        assert interruption(wrapped).exit_code == 143
    assert interruption(ValueError("plain")) is None


def deep_keras_model(path: Path) -> Path:
    """60 Conv->ReLU layers: tf2onnx takes seconds on it, long enough to be interrupted mid-export."""
    import keras

    inp = keras.Input((8, 8, 4))
    x = inp
    for _ in range(60):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    keras.Model(inp, x).save(path)
    return path


def test_sigterm_during_export(cli, tmp_path):
    model = deep_keras_model(tmp_path / "deep.h5")
    cli.watch(model)
    proc = cli.start(model, "out.onnx")  # progress lines on: they tell when the export starts
    seen = []
    while not seen or not seen[-1].startswith("onnx-fuse: exporting"):
        line = proc.stderr.readline()
        assert line, f"ended before the export: {seen}"
        seen.append(line.rstrip("\n"))
    run = interrupted(proc, signal.SIGTERM)
    assert_interrupted(run, signal.SIGTERM)
    assert not any("normalising" in line for line in run.lines), "the signal landed after the export"
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean()


def running(cli: Cli, command: bytes) -> bool:
    """A process the run started has `command` in its command line."""
    for pid in cli.tagged_pids():
        try:
            if command in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_signal_during_the_hls_stage_kills_children_and_restores_dir(cli, tmp_path, sig):
    """While g++ compiles the C-sim: children killed at once (not ~60 s later), g++'s own temp files gone too,
    staging removed, the earlier output and the user's file in DIR exactly as they were."""
    out = tmp_path / "hls"
    earlier_output(out)
    cli.watch(out)
    proc = cli.start(conv_relu(tmp_path), "out.onnx", "-q", "--samples", "2", "--hls-out", out)
    wait_for(lambda: running(cli, b"cc1plus"), 300, "g++ compiling")
    time.sleep(1)
    run = interrupted(proc, sig)
    assert run.seconds < 15
    assert_interrupted(run, sig)
    assert len(run.lines) == 1
    assert not (tmp_path / "out.onnx").exists()
    cli.assert_clean(out)


@pytest.mark.slow
def test_sigint_during_the_hls_stage_into_a_new_dir_leaves_nothing(cli, tmp_path):
    proc = cli.start(conv_relu(tmp_path), "out.onnx", "-q", "--samples", "2", "--hls-out", "new")
    wait_for(lambda: running(cli, b"hls_backend.csim"), 300, "the C-sim children")
    time.sleep(3)
    assert_interrupted(interrupted(proc, signal.SIGINT), signal.SIGINT)
    assert not (tmp_path / "new").exists()
    cli.assert_clean()


def test_depthwise_conv_under_the_resource_strategy_is_refused(cli, tmp_path):
    """hls4ml 1.3 computes a Resource-strategy depthwise conv wrong in io_stream (the same in the fused and the
    unfused design, so bit-exactness cannot catch it): refused in one line; the estimate converts the same design."""
    depthwise = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], group=2),
         helper.make_node("Relu", ["c"], ["y"])],
        [conv_init("w", 2, 1)],
        {"x": [1, 2, 6, 6]},
        {"y": [1, 2, 4, 4]},
    )
    model = save(depthwise, tmp_path / "depthwise.onnx")
    cli.watch(model)
    run = cli.run("estimate", model, "--strategy", "Resource", "-q")
    assert_one_error(run, 2, "DepthwiseConv2D", "resource strategy", "Latency")
    cli.assert_clean(tmp_path)
    assert cli.run("estimate", model, "-q").returncode == 0  # Latency: estimated
