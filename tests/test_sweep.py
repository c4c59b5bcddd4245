"""`onnx-fuse sweep` on real Dask clusters: a LocalCluster the command starts, and a `dask scheduler` with two
`dask worker` processes on loopback, one of them killed mid-sweep."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import MODELS, REPO, conv_init, make_model, vec_init
from test_faults import Cli

pytest.importorskip("distributed")

MLP = [MODELS / "digits_mlp.h5", "--data", MODELS / "digits_mlp.npz", "--samples", "4", "--io-type", "io_parallel"]


def small_onnx(path: Path) -> Path:
    model = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        [conv_init("w", 4, 2), vec_init("b", 4)], {"x": [1, 2, 6, 6]}, {"y": [1, 4, 6, 6]},
    )
    onnx.save(model, str(path))
    return path


def results(out: Path) -> list[dict]:
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a local cluster and a C-sim that exceeds its memory limit: ~40 s of CPU
def test_failing_points_are_rows_a_rerun_skips_them_and_dir_keeps_the_users_file(tmp_path):
    """Real Dask, 2 workers, points that fail fast without a compile: over a worker memory limit that the C-sim
    processes exceed, and (rerun with --retry-failed, no limit) a precision hls4ml refuses. Each fails alone with
    its reason; a rerun with the same arguments skips every finished point (no cluster started); the user's file in
    DIR is untouched; no process or temporary file is left."""
    cli, out = Cli(tmp_path), tmp_path / "sweep"
    model = small_onnx(tmp_path / "small.onnx")
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    cli.watch(out / "notes.txt", model)
    args = ["sweep", model, "--out", out, "--precision", "bogus", "ap_fixed<8,3>", "--workers", "2"]
    limited = [*args, "--memory-limit", "400MB"]
    refused = cli.run(*limited, "-q")
    assert refused.returncode == 2 and "not empty and holds no earlier onnx-fuse sweep" in refused.stderr
    assert refused.stderr.count("\n") == 1
    run = cli.run(*limited, "--force", timeout=300)
    assert run.returncode == 4, run.stderr
    assert "sweep: 2/2 points done (2 failed)" in run.stderr
    rows = {r["precision"]: r for r in results(out)}
    assert set(rows) == {"bogus", "ap_fixed<8,3>"} and {r["status"] for r in rows.values()} == {"failed"}
    assert rows["ap_fixed<8,3>"]["error"].startswith("exceeded the worker's memory limit of 381 MiB")
    assert rows["bogus"]["error"]  # the memory limit or the precision, whichever comes first
    cli.assert_clean(out)

    retried = cli.run("sweep", model, "--out", out, "--precision", "bogus", "--retry-failed", "--workers", "1",
                      timeout=300)
    assert retried.returncode == 4, retried.stderr
    [bogus] = results(out)
    assert bogus["point_id"] == rows["bogus"]["point_id"]
    assert "Unsupported precision type: bogus" in bogus["error"]
    for row in (bogus, rows["ap_fixed<8,3>"]):
        saved = json.loads((out / "points" / row["point_id"] / "row.json").read_text())
        assert saved["error"] == row["error"] and saved["status"] == "failed"
    assert "## Failed points" in (out / "sweep.md").read_text()
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / ".onnx-fuse.json").read_text())["written_by"] == "onnx-fuse sweep"
    cli.assert_clean(out)

    before = {p: p.stat().st_mtime_ns for p in (out / "points").rglob("row.json")}
    again = cli.run(*limited, timeout=300)  # an earlier sweep's DIR: no --force needed
    assert again.returncode == 4, again.stderr
    assert "2 of 2 points finished by an earlier run: skipped" in again.stderr
    assert "local Dask cluster" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "points").rglob("row.json")} == before
    assert [r["point_id"] for r in results(out)] == [rows["bogus"]["point_id"], rows["ap_fixed<8,3>"]["point_id"]]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".onnx-fuse.json", "notes.txt", "points", "results.csv", "sweep.md", "sweep.png"])
    cli.assert_clean(out)


def test_point_ids_and_grid():
    from onnx_fuse.sweep import Point, grid

    points = grid(["ap_fixed<16,6>", "ap_fixed<8,4>", "ap_fixed<16,6>"], [1, 4], ["io_stream"], ["Latency"], ["Vivado"])
    assert len(points) == 4 and points[0] == Point("ap_fixed<16,6>", 1, "io_stream", "Latency", "Vivado")
    assert points[0].point_id("a").startswith("ap_fixed_16_6-rf1-io_stream-Latency-Vivado-")
    assert points[0].point_id("a") != points[0].point_id("b") != points[1].point_id("a")


def test_pareto_front_and_csim_accuracy():
    from hls_backend.accuracy import csim_vs_onnx
    from onnx_fuse.sweep_results import pareto

    assert pareto([(10, 0.5), (5, 0.9), (20, 0.1), (12, 0.6), (5, 1.0)]) == [(5, 0.9), (10, 0.5), (20, 0.1)]
    ref = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 1.0]])
    got = np.array([[0.0, 0.75, 0.5], [0.5, 1.0, 1.0]])
    acc = csim_vs_onnx(got, ref)
    assert (acc.samples, acc.max_abs_err, acc.top1_agree) == (2, 1.5, 1)


def hls_out_run(cli: Cli, tmp: Path, precision: str, reuse: int) -> dict:
    run = cli.run(*MLP, tmp / f"m{reuse}.onnx", "--hls-out", tmp / f"hls-{precision}-{reuse}", "--json",
                  "--precision", precision, "--reuse-factor", str(reuse), timeout=900)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["hls"]


def firmware(project: Path) -> dict[str, str]:
    return {str(p.relative_to(project)): p.read_text() for p in sorted((project / "firmware").rglob("*"))
            if p.suffix in (".h", ".cpp", ".txt")}


@pytest.mark.slow
@pytest.mark.hls
def test_two_by_two_sweep_on_two_local_workers_equals_the_points_run_one_at_a_time(tmp_path):
    """Rows of a 2 x 2 sweep (2 local workers) against the same points run one by one with --hls-out: the same
    bit-exactness, fused-vs-unfused difference, pairs in the write-back, sample count, and the same generated
    firmware (--keep-projects); and C-sim vs onnxruntime within the precision's reach."""
    cli, out = Cli(tmp_path), tmp_path / "sweep"
    run = cli.run("sweep", *MLP, "--out", out, "--precision", "ap_fixed<16,6>", "ap_fixed<10,4>",
                  "--reuse-factor", "1", "2", "--workers", "2", "--keep-projects", timeout=1800)
    assert run.returncode == 0, run.stderr
    rows = results(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len({r["worker"] for r in rows}) == 2  # both workers ran points
    for row in rows:
        hls = hls_out_run(cli, tmp_path, row["precision"], int(row["reuse_factor"]))
        assert row["bit_exact"] == str(hls["bit_exact"]) == "True"
        assert float(row["fused_vs_unfused_max_abs_diff"]) == hls["max_abs_diff"]
        assert int(row["pairs_in_write_back"]) == hls["fused_in_hls"] == 2
        assert int(row["pairs"]) == hls["pairs"] and int(row["samples"]) == hls["samples"]
        point = out / "points" / row["point_id"]
        for side in ("fused", "unfused"):
            assert firmware(point / side) == firmware(Path(hls[f"{side}_project"])), (row["point_id"], side)
        assert int(row["fused_processes"]) == int(row["unfused_processes"]) - 2
        assert row["fused_csim_max_abs_err"] == row["unfused_csim_max_abs_err"]
        assert row["fused_csim_top1_agree"] == row["unfused_csim_top1_agree"]
    by_precision = {r["precision"]: r for r in rows}
    wide, narrow = by_precision["ap_fixed<16,6>"], by_precision["ap_fixed<10,4>"]
    assert float(wide["fused_csim_max_abs_err"]) < 0.5 and wide["fused_csim_top1_agree"] == wide["samples"]
    # 4 integer bits wrap this MLP's logits: measured as much worse, and some top-1 classes change
    assert float(narrow["fused_csim_max_abs_err"]) > 10 * float(wide["fused_csim_max_abs_err"])
    assert int(narrow["fused_csim_top1_agree"]) < int(narrow["samples"])
    cli.assert_clean(out)


@pytest.mark.slow
@pytest.mark.hls
def test_sigterm_cancels_the_sweep_keeps_finished_points_and_leaves_nothing_behind(tmp_path):
    cli, out = Cli(tmp_path), tmp_path / "sweep"
    proc = cli.start("sweep", *MLP, "--out", out, "--precision", "ap_fixed<16,6>", "ap_fixed<12,5>",
                     "ap_fixed<10,4>", "--workers", "1")
    deadline = time.monotonic() + 900
    while not list((out / "points").glob("*/row.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    finished = sorted(p.parent.name for p in (out / "points").glob("*/row.json"))
    assert finished, "no point finished"
    time.sleep(5)  # the next point is compiling
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM: stopped;" in err and f"kept in {out}" in err
    kept = sorted(p.name for p in (out / "points").iterdir())
    assert set(finished) <= set(kept) and len(kept) < 3
    assert sorted(r["point_id"] for r in results(out)) == kept
    cli.assert_clean(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csim_children(pid: int) -> list[int]:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "hls_backend.csim" in child.cmdline():
                found.append(child.pid)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
@pytest.mark.hls
def test_distributed_sweep_survives_a_worker_killed_mid_point(tmp_path):
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1, started here; one worker is killed (SIGKILL)
    while it runs a point. The point is retried on the other worker: every point finishes, none is lost."""
    cli, out = Cli(tmp_path), tmp_path / "sweep"
    port = free_port()
    env = dict(os.environ, TMPDIR=str(cli.tmpdir), FAULT_TAG=cli.tag, PYTHONPATH=str(REPO),
               DASK_LOGGING__DISTRIBUTED="error")
    dask = [sys.executable, "-m", "dask"]
    started = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for _ in range(2):
            started.append(subprocess.Popen(
                [*dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp_path / "w")],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        workers = started[1:]
        proc = cli.start("sweep", *MLP, "--out", out, "--precision", "ap_fixed<16,6>", "ap_fixed<10,4>",
                         "--reuse-factor", "1", "2", "--scheduler", f"tcp://127.0.0.1:{port}")
        deadline, victim = time.monotonic() + 600, None
        while victim is None and time.monotonic() < deadline:  # a worker in the middle of a C-sim
            victim = next((w for w in workers if csim_children(w.pid)), None)
            time.sleep(0.5)
        assert victim is not None and proc.poll() is None
        orphans = csim_children(victim.pid)
        victim.kill()
        victim.wait()
        for pid in orphans:  # a machine that dies takes its processes along; here they would outlive the worker
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
        rows = results(out)
        assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
        assert {r["bit_exact"] for r in rows} == {"True"}
        assert len(list((out / "points").glob("*/row.json"))) == 4
    finally:
        for p in reversed(started):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
