"""`onnx-fuse sweep MODEL --out DIR ...`: the cartesian product of hls4ml settings, one Dask task per point.

The client loads, exports, normalises, fuses and checks the model once; each point (a fused and an unfused hls4ml
build plus C-sim) runs on a Dask worker: a LocalCluster this command starts (one worker process per core), or an
existing cluster (--scheduler). Rows come back to the client, which writes each finished point at once.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from onnx_fuse.errors import (
    SIGNALS, InputError, Interrupted, first_line, interruption, raise_if_signalled,
)
from onnx_fuse.sweep import Point, Shared, grid, kill_csim_children, run_point
from onnx_fuse.sweep_dir import OutDir, check_out_dir
from onnx_fuse.sweep_results import csv_text, markdown, plot

log = logging.getLogger("onnx_fuse")

EXIT_CODES = """exit codes (every error is one line on stderr):
  0  every point built, simulated and bit-exact fused vs unfused
  2  bad input (as for onnx-fuse MODEL OUT.onnx), an unusable --out DIR, or a scheduler that cannot be reached
  3  parity failed in onnxruntime, or a point whose fused C-sim differs from its unfused one
  4  some points failed (each row of DIR/results.csv says why); the others are written
  130, 143  interrupted by SIGINT / SIGTERM: outstanding points cancelled, the cluster this command started
     stopped, every finished point kept in DIR/points, no temporary file left
"""


def parser() -> argparse.ArgumentParser:
    from onnx_fuse.cli import OneLineParser

    class SweepParser(OneLineParser):
        def error(self, message: str):  # the project's one error line, whatever the subcommand
            self.exit(2, f"onnx-fuse: error: {message} (see onnx-fuse sweep --help)\n")

    p = SweepParser(
        prog="onnx-fuse sweep",
        description="Build the fused and the unfused hls4ml design of every combination of the given settings,\n"
        "run both C-sims on the parity inputs, and tabulate bit-exactness, accuracy against onnxruntime and the\n"
        "estimated FIFO cost. Points run as Dask tasks: on a local cluster by default, or on --scheduler.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help="input model: .h5, .keras, .json (architecture) or .onnx")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="results.csv, sweep.md, sweep.png, points/")
    p.add_argument("--weights", type=Path, metavar="W.h5", help="weights of a .json model (default: MODEL_weights.h5)")
    p.add_argument("--data", type=Path, help="real test inputs (.npy, or .npz keyed by input name or 'x')")
    p.add_argument("--samples", type=int, default=16, help="random inputs added to the parity inputs (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    grid_args = p.add_argument_group("the grid (each option takes one or more values; the sweep is their product)")
    grid_args.add_argument("--precision", nargs="+", default=["ap_fixed<16,6>"], metavar="P")
    grid_args.add_argument("--reuse-factor", nargs="+", type=int, default=[1], metavar="N")
    grid_args.add_argument("--io-type", nargs="+", choices=["io_stream", "io_parallel"], default=["io_stream"])
    grid_args.add_argument("--strategy", nargs="+", choices=["Latency", "Resource", "resource_unrolled"],
                           default=["Latency"])
    grid_args.add_argument("--backend", nargs="+", choices=["Vivado", "Vitis"], default=["Vivado"])
    grid_args.add_argument("--config", type=Path, metavar="YML", help="hls4ml config overrides for every point")
    engine = p.add_argument_group("engine (Dask distributed)")
    engine.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    engine.add_argument("--workers", type=int, help="local cluster: worker processes (default: one per core)")
    engine.add_argument("--memory-limit", default="auto", metavar="SIZE",
                        help="local cluster: memory per worker and its C-sim processes, e.g. 6GiB "
                        "(default: auto, the machine's memory divided among the workers)")
    p.add_argument("--keep-projects", action="store_true", help="keep each point's hls4ml projects in its directory")
    p.add_argument("--retry-failed", action="store_true", help="rerun points an earlier run recorded as failed")
    p.add_argument("--force", action="store_true", help="allow a non-empty DIR that onnx-fuse did not write")
    p.add_argument("-v", "--verbose", action="store_true", help="log every pass, and the libraries' own logs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def check_args(args: argparse.Namespace) -> str | None:
    if args.samples < 1:
        return "--samples must be at least 1"
    if args.seed < 0:
        return "--seed must be 0 or more"
    if min(args.reuse_factor) < 1:
        return "--reuse-factor must be at least 1"
    if args.workers is not None and args.workers < 1:
        return "--workers must be at least 1"
    if args.scheduler and (args.workers is not None or args.memory_limit != "auto"):
        return "--workers and --memory-limit set up the local cluster; an existing cluster (--scheduler) has its own"
    if args.memory_limit != "auto":
        from dask.utils import parse_bytes

        try:
            parse_bytes(args.memory_limit)
        except (ValueError, TypeError):
            return f"--memory-limit {args.memory_limit!r} is not a size (e.g. 6GiB, 4000MB)"
    return None


def main(argv: list[str]) -> int:
    """Called by onnx_fuse.cli.main (its SIGINT/SIGTERM handlers raise Interrupted)."""
    from onnx_fuse.cli import failure_exit_code, native_noise_dropped, quiet_libraries, setup_logging

    args = parser().parse_args(argv)
    quiet_libraries()
    handler = setup_logging(args.verbose, args.quiet)
    if not args.verbose:  # Dask's own warnings (a worker restarted, a slow event loop): the rows say what matters
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"
        logging.getLogger("distributed").setLevel(logging.ERROR)
    problem = check_args(args)
    if problem:
        print(f"onnx-fuse: error: {problem}", file=sys.stderr)
        return 2
    try:
        with native_noise_dropped(handler, args.verbose):
            return sweep(args)
    except Exception as exc:
        return failure_exit_code(exc, args.verbose)


def prepare(args: argparse.Namespace) -> Shared:
    """Load, export, normalise, fuse and check parity once, as `onnx-fuse MODEL OUT.onnx` does."""
    from hls_backend.hls_stage import read_config_overrides
    from onnx_fuse.pipeline import Options, run
    from onnx_fuse.verify import make_feeds, run_onnx

    overrides = read_config_overrides(args.config) if args.config is not None else None
    scratch = Path(tempfile.mkdtemp(prefix="onnx-fuse-sweep-"))
    try:
        options = Options(samples=args.samples, seed=args.seed, data=args.data, weights=args.weights)
        result = run(args.model, scratch / "fused.onnx", options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fused = result.model
    # the inputs `onnx-fuse --hls-out` builds: a QKeras model's random ones on verify.GRID_STEP's grid
    feeds = make_feeds(fused, args.samples, args.seed, args.data, on_grid=result.loader == "qkeras")
    if len(feeds) != 1:
        raise InputError("the hls stage handles single-input models only")
    reference = run_onnx(fused, feeds)[0]
    return Shared(fused.SerializeToString(), next(iter(feeds.values())), reference, overrides)


def fingerprint(shared: Shared) -> str:
    """What a point's result depends on besides its settings: a rerun skips a point only when all of it is equal."""
    h = hashlib.sha256(shared.model)
    h.update(repr((shared.x.dtype.str, shared.x.shape)).encode())
    h.update(np.ascontiguousarray(shared.x).tobytes())
    h.update(json.dumps(shared.overrides, sort_keys=True, default=str).encode())
    return h.hexdigest()


def sweep(args: argparse.Namespace) -> int:
    points = grid(args.precision, args.reuse_factor, args.io_type, args.strategy, args.backend)
    inputs = [path for path in (args.model, args.weights, args.data, args.config) if path is not None]
    check_out_dir(args.out, inputs, args.force)
    log.info("preparing %s once for %d point%s ...", args.model, len(points), "s" if len(points) != 1 else "")
    shared = prepare(args)
    SIGNALS.committed = False  # pipeline.run committed its (scratch) output; the sweep's signals stop the sweep
    raise_if_signalled()  # one that came while it did
    out = OutDir(args.out)
    ids = {point: point.point_id(fingerprint(shared)) for point in points}
    rows: dict[str, dict] = {}
    try:
        todo = []
        for point in points:
            row = out.finished(ids[point])
            if row is not None and not (args.retry_failed and row.get("status") != "ok"):
                rows[ids[point]] = row
            else:
                todo.append(point)
        if rows:
            log.info("%d of %d points finished by an earlier run: skipped", len(rows), len(points))
        if todo:
            run_points(args, shared, todo, ids, out, rows)
    except Interrupted as exc:
        write_results(out, args, [rows[ids[p]] for p in points if ids[p] in rows])
        print(f"onnx-fuse: interrupted by {exc.args[0]}: stopped; {len(rows)} finished point"
              f"{'s' if len(rows) != 1 else ''} kept in {args.out}", file=sys.stderr)
        return exc.exit_code
    finally:
        out.close(kept_anything=bool(rows))
    ordered = [rows[ids[p]] for p in points]
    write_results(out, args, ordered)
    print(summary(ordered, args.out))
    if any(r.get("status") == "ok" and not r.get("bit_exact") for r in ordered):
        return 3
    return 4 if any(r.get("status") != "ok" for r in ordered) else 0


def write_results(out: OutDir, args: argparse.Namespace, rows: list[dict]) -> None:
    if not rows:
        return
    title = f"onnx-fuse sweep of {args.model.name}"
    out.write("results.csv", csv_text(rows))
    out.write("sweep.md", markdown(rows, title))
    scratch = Path(tempfile.mkdtemp(prefix="onnx-fuse-sweep-"))
    try:
        plot(rows, scratch / "sweep.png", title)
        out.write("sweep.png", (scratch / "sweep.png").read_bytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def summary(rows: list[dict], out_dir: Path) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    exact = sum(1 for r in ok if r.get("bit_exact"))
    lines = [f"sweep: {len(rows)} points, {len(ok)} ok ({exact} bit-exact fused vs unfused), "
             f"{len(rows) - len(ok)} failed",
             f"  results: {out_dir / 'results.csv'}, {out_dir / 'sweep.md'}, {out_dir / 'sweep.png'}"]
    lines += [f"  failed {r['point_id']}: {r.get('error')}" for r in rows if r.get("status") != "ok"]
    return "\n".join(lines)


@contextlib.contextmanager
def signals_held_for_spawn() -> Iterator[None]:
    """Worker processes spawned meanwhile inherit SIGINT ignored (a terminal's Ctrl-C reaches the whole process
    group; the client alone decides, then stops them and their C-sims in order). A SIGTERM meanwhile is held and
    delivered once the cluster exists, so that the cleanup stops it."""
    held: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if callable(previous[signal.SIGTERM]):
        signal.signal(signal.SIGTERM, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held and callable(previous[signal.SIGTERM]):
        previous[signal.SIGTERM](held[0], None)


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[object]:
    """A Dask client: of the given scheduler, or of a LocalCluster started (and stopped) here, whose workers keep
    every file they make (C-sim jobs, g++'s temporaries, Dask's scratch space) in one directory removed at the end."""
    from distributed import Client, LocalCluster

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the Dask scheduler {args.scheduler}: {first_line(exc)}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    workers = args.workers or len(os.sched_getaffinity(0))
    scratch = tempfile.mkdtemp(prefix="onnx-fuse-sweep-")
    previous_tmpdir = os.environ.get("TMPDIR")
    local = client = None
    config = dask.config.set({"temporary-directory": scratch})  # the scheduler's and nannies' lock files too
    try:
        os.environ["TMPDIR"] = scratch  # inherited by the spawned workers, and by their C-sim children
        with signals_held_for_spawn():
            local = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                host="127.0.0.1", dashboard_address=None, local_directory=scratch,
                silence_logs=logging.DEBUG if args.verbose else logging.ERROR,
            )
        if previous_tmpdir is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous_tmpdir
        client = Client(local)
        log.info("local Dask cluster: %d worker process%s, 1 thread and %s memory each", workers,
                 "es" if workers != 1 else "", args.memory_limit)
        yield client
    finally:
        if previous_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous_tmpdir
        if client is not None:
            client.close()
        if local is not None:
            local.close()
        config.__exit__(None, None, None)
        shutil.rmtree(scratch, ignore_errors=True)


def stop_running(client, futures) -> None:
    """Cancel what is left: Dask forgets queued tasks, but a running one goes on until it returns. Kill the C-sim
    children on every worker (the task then fails at once and removes its files), and wait for the workers to
    become idle, a bounded time."""
    keys = {f.key for f in futures}
    client.cancel(list(futures))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.run(kill_csim_children, on_error="ignore")
            running = client.run(executing_keys, on_error="ignore").values()
            busy = sum(1 for tasks in running for key in tasks if key in keys)
        except Exception:  # a worker gone meanwhile: nothing left to stop there
            busy = 0
        if not busy:
            return
        time.sleep(0.5)


def failed_row(point: Point, point_id: str, exc: BaseException) -> dict:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        reason = ("its worker process died each time it ran this point (out of the worker's memory, or a crash); "
                  f"Dask gave up: {first_line(exc)}")
    else:
        reason = f"task failed: {type(exc).__name__}: {first_line(exc)}"
    return {"point_id": point_id, "precision": point.precision, "reuse_factor": point.reuse_factor,
            "io_type": point.io_type, "strategy": point.strategy, "backend": point.backend, "status": "failed",
            "error": reason}


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_points(args: argparse.Namespace, shared: Shared, todo: list[Point], ids: dict, out: OutDir,
               rows: dict[str, dict]) -> None:
    from distributed import wait

    with cluster(args) as client:
        [shared_data] = client.scatter([shared], broadcast=True)
        futures = {
            client.submit(run_point, shared_data, point, ids[point], args.keep_projects, key=f"onnx-fuse-{ids[point]}",
                          pure=False): point
            for point in todo
        }
        start, pending, done, failed, last = time.monotonic(), set(futures), 0, 0, 0.0
        try:
            while pending:
                try:
                    finished, pending = wait(pending, timeout=10, return_when="FIRST_COMPLETED")
                except TimeoutError:  # none finished in 10 s: only the progress line
                    finished = set()
                for future in finished:
                    point = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:
                        if interruption(exc) is not None:
                            raise
                        result = {"row": failed_row(point, ids[point], exc), "projects": None}
                    out.write_point(result["row"], result["projects"])
                    rows[ids[point]] = result["row"]
                    done += 1
                    failed += result["row"]["status"] != "ok"
                    if result["row"]["status"] != "ok":
                        log.info("point %s failed: %s", ids[point], result["row"].get("error"))
                if finished or time.monotonic() - last > 30:
                    last = time.monotonic()
                    log.info("%s", progress(client, pending, done, failed, len(todo), last - start))
        except BaseException:
            stop_running(client, pending)
            raise


def executing_keys(dask_worker) -> list:
    return [task.key for task in dask_worker.state.executing]


def progress(client, pending: set, done: int, failed: int, total: int, elapsed: float) -> str:
    keys = {f.key for f in pending}
    try:  # the scheduler's "processing" also counts tasks queued on a worker: ask the workers what they execute
        running = sum(1 for tasks in client.run(executing_keys, on_error="ignore").values() for key in tasks
                      if key in keys)
    except Exception:  # a worker busy or gone: the count is only informative
        running = 0
    estimate = f", about {duration(elapsed / done * (total - done))} left" if done and done < total else ""
    return (f"sweep: {done}/{total} points done ({failed} failed), {running} running, elapsed {duration(elapsed)}"
            f"{estimate}")
