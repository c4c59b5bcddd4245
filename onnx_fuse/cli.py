"""Command line: `python -m onnx_fuse MODEL OUTPUT.onnx` (also installed as `onnx-fuse`), and the subcommands
`onnx-fuse estimate MODEL` (onnx_fuse/estimate_cli.py) and `onnx-fuse sweep MODEL --out DIR` (onnx_fuse/sweep_cli.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from onnx_fuse.errors import SIGNALS, FuseError, Interrupted, interruption
from onnx_fuse.summary import as_json, summary

EXIT_CODES = """exit codes (every error is one line on stderr; with -q it is the only line):
  0  fused and written (parity checked unless --no-verify)
  1  internal error (a bug: rerun with -v and report it)
  2  bad input: missing, unreadable, non-regular or corrupt file, unsupported layer or shape, a graph a library
     cannot normalise or run, parity inputs over the memory budget, unwritable output, unusable --hls-out DIR
  3  parity check failed: the fused graph does not match the original; nothing written
  130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM: child processes killed, temporary files removed,
     nothing written
"""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the usage first: every error here is one line
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="onnx-fuse",
        description="Export a Keras model (.h5/.keras) or read an ONNX graph, normalise it for hls4ml,\n"
        "fuse every Conv/Dense -> Relu/LeakyRelu/Clip pair into one onnx_fuse node such as ConvRelu\n"
        "(a model-local function, so plain onnxruntime runs it), check parity in onnxruntime and write the fused file.\n"
        "Subcommands: `onnx-fuse estimate MODEL ...` estimates the fused and unfused hls4ml designs (see its --help);\n"
        "`onnx-fuse sweep MODEL --out DIR ...` sweeps hls4ml settings on Dask (onnx-fuse sweep --help).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help="input model: .h5, .keras, .json (architecture), .onnx or .tflite")
    p.add_argument("output", type=Path, help="fused ONNX file to write (never the input)")
    p.add_argument("--weights", type=Path, metavar="W.h5", help="weights of a .json model (default: MODEL_weights.h5)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime parity checks")
    p.add_argument("--data", type=Path, help="real test inputs (.npy, or .npz keyed by input name or 'x')")
    p.add_argument("--samples", type=int, default=16, help="random inputs for parity (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    hls = p.add_argument_group("hls4ml (fused design and its unfused reference, C-sim compared bit for bit)")
    hls.add_argument("--hls-out", type=Path, metavar="DIR", help="write hls4ml projects DIR/fused and DIR/unfused")
    hls.add_argument("--backend", choices=["Vivado", "Vitis"], default="Vivado", help="hls4ml backend (default: Vivado)")
    hls.add_argument("--io-type", choices=["io_stream", "io_parallel"], default="io_stream", help="default: io_stream")
    hls.add_argument(
        "--strategy", choices=["Latency", "Resource", "resource_unrolled"], default="Latency", help="default: Latency"
    )
    hls.add_argument("--precision", help="default precision (default: ap_fixed<16,6>, and a float-scale model's scale "
                     "stages typed from its scales)")
    hls.add_argument("--reuse-factor", type=int, default=1, help="default reuse factor (default: 1)")
    hls.add_argument("--config", type=Path, metavar="YML", help="hls4ml config overrides (Model:/LayerName: ...)")
    hls.add_argument("--report", action="store_true",
                     help="whole-design estimate (and io_stream FIFOs) fused vs unfused -> DIR/report.md")
    hls.add_argument(
        "--force", action="store_true",
        help="allow a non-empty DIR that onnx-fuse did not write (its other files are still never touched)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="log every pass and change")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--version", action="version", version=version_line())
    return p


def version_line() -> str:
    """onnx-fuse's version and those of the libraries whose behaviour it depends on (read without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    libraries = ("hls4ml", "qonnx", "onnx", "onnxruntime", "onnxscript", "tf2onnx", "tensorflow", "keras", "qkeras-v3")
    return f"onnx-fuse {installed('onnx-fuse')} (" + ", ".join(f"{n} {installed(n)}" for n in libraries) + ")"


def quiet_libraries() -> None:
    """TensorFlow, tf2onnx and onnxruntime log freely; only our lines should reach the user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore")
    for name in ("tensorflow", "tf2onnx", "onnxslim", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def setup_logging(verbose: bool, quiet: bool) -> logging.StreamHandler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("onnx-fuse: %(message)s"))
    ours = logging.getLogger("onnx_fuse")
    ours.handlers[:] = [handler]
    ours.propagate = False
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    return handler


@contextmanager
def native_noise_dropped(handler: logging.StreamHandler, verbose: bool) -> Iterator[None]:
    """Native code writes to file descriptor 2 directly: onnxruntime logs a failed run in colour from the sessions
    onnxslim creates for constant folding (onnxslim resets onnxruntime's log level on every call). Without -v, fd 2
    points at /dev/null during the run and our own lines go to a duplicate of the real stderr."""
    try:
        real_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # stderr replaced in-process (pytest's capsys): nothing to do
        real_fd2 = False
    if verbose or not real_fd2:
        yield
        return
    original = sys.stderr
    original.flush()
    ours = os.fdopen(os.dup(2), "w", buffering=1)
    try:  # everything that changes fd 2 or sys.stderr inside: an interrupt at any point is undone by finally
        sys.stderr = ours
        handler.setStream(ours)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        ours.flush()
        os.dup2(ours.fileno(), 2)
        sys.stderr = original
        handler.setStream(original)
        ours.close()


def raise_interrupted(signum: int, frame) -> None:
    SIGNALS.received.append(signum)
    if SIGNALS.committed:  # the output is moving into place: the run completes
        return
    # Further signals are ignored from here on: a second Ctrl-C must not cut the cleanup (killing the C-sim process
    # groups, removing temporary directories) short.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    SIGNALS.reset()
    unraisable_hook = sys.unraisablehook

    def swallowed(unraisable) -> None:  # an Interrupted Python dropped: SIGNALS.received keeps it, print nothing
        if not isinstance(unraisable.exc_value, Interrupted):
            unraisable_hook(unraisable)

    sys.unraisablehook = swallowed
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:  # a shell starts background jobs with SIGINT ignored: leave it so
            signal.signal(sig, raise_interrupted)
    try:
        return run_cli(argv)
    except BaseException as exc:
        interrupt = interruption(exc)
        if interrupt is None:
            raise
        name, code = (interrupt.args[0], interrupt.exit_code) if isinstance(interrupt, Interrupted) else ("SIGINT", 130)
        print(f"onnx-fuse: interrupted by {name}: stopped, no output written", file=sys.stderr)
        return code
    finally:  # main() called from Python (the tests, a notebook) gives the caller its handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = unraisable_hook
        SIGNALS.reset()  # a signal this run received must not stop a later run() or fuse() in the same process


def entry() -> None:
    """The command (`onnx-fuse`, `python -m onnx_fuse`): main(), then the interpreter's exit with SIGINT/SIGTERM
    ignored. The run is over and its output in place by then; a signal in the second TensorFlow and onnxruntime
    take to shut down must not turn a finished run into one killed by the signal, without its message."""
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def check_counts(args: argparse.Namespace) -> str | None:
    if args.samples < 1:
        return "--samples must be at least 1"
    if args.seed < 0:
        return "--seed must be 0 or more"
    if args.reuse_factor < 1:
        return "--reuse-factor must be at least 1"
    if args.hls_out is None and (args.report or args.config):
        return "--report and --config need --hls-out DIR"
    if args.hls_out is None and args.force:
        return "--force needs --hls-out DIR"
    return None


def failure_exit_code(exc: Exception, verbose: bool) -> int:
    """A command's failure as one stderr line and its exit code (EXIT_CODES), for the main command and the
    subcommands alike; an error a library raised because a signal interrupted it goes on to main()."""
    if interruption(exc) is not None:
        raise exc
    if isinstance(exc, FuseError):
        print(f"onnx-fuse: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if verbose:  # a bug: one line by default, the traceback with -v
        traceback.print_exc()
    print(f"onnx-fuse: internal error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    return 1


def run_cli(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["estimate"]:  # the subcommand (a model file named `estimate` is given as ./estimate)
        from onnx_fuse.estimate_cli import run

        return run(argv[1:])
    if argv[:1] == ["sweep"]:  # `onnx-fuse sweep MODEL --out DIR ...` (a file named 'sweep': `./sweep`)
        from onnx_fuse.sweep_cli import main as sweep_main

        return sweep_main(argv[1:])
    args = parser().parse_args(argv)
    quiet_libraries()
    handler = setup_logging(args.verbose, args.quiet or args.json)
    problem = check_counts(args)
    if problem:
        print(f"onnx-fuse: error: {problem}", file=sys.stderr)
        return 2
    try:
        from onnx_fuse.preflight import check_run_files

        check_run_files(args.model, args.output, args.data)  # answered before the heavy imports below (2 s)
        from hls_backend.hls_stage import HlsOptions
        from onnx_fuse.pipeline import Options, run

        hls = None
        if args.hls_out is not None:
            hls = HlsOptions(
                args.hls_out, args.backend, args.io_type, args.strategy, args.precision, args.reuse_factor,
                args.config, args.report, args.force,
            )
        options = Options(
            verify=not args.no_verify, samples=args.samples, seed=args.seed, data=args.data, weights=args.weights,
            hls=hls,
        )
        with native_noise_dropped(handler, args.verbose):
            result = run(args.model, args.output, options)
    except Exception as exc:
        return failure_exit_code(exc, args.verbose)
    # The output is in place. A signal while printing (stdout may be a pipe nobody reads) stops the printing.
    SIGNALS.committed = False
    try:
        print(as_json(result) if args.json else summary(result))
    except BrokenPipeError:  # e.g. piped into `head`
        pass
    except Interrupted as exc:
        print(f"onnx-fuse: interrupted by {exc.args[0]} after writing {result.output}", file=sys.stderr)
        return exc.exit_code
    return 0
