"""Errors the CLI turns into one line and an exit code (see `onnx-fuse --help`)."""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

OUR_PACKAGES = tuple(str(Path(__file__).resolve().parent.parent / name) for name in ("onnx_fuse", "hls_backend"))


class FuseError(Exception):
    """A failure the user can act on; the message is the whole story, no traceback."""

    exit_code = 1


class InputError(FuseError):
    """Bad input: missing/unreadable/corrupt file, unsupported layer or shape, unwritable output."""

    exit_code = 2


class ParityError(FuseError):
    """The fused graph does not compute what the original did: nothing is written."""

    exit_code = 3


def first_line(exc: BaseException | str) -> str:
    """A library's message folded into one line: the CLI promises exactly one error line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no `except Exception` in our code
    or a library's swallows it on its way to the cleanup code."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:  # the shell's convention for "ended by signal N"
        return 128 + self.signum


@dataclass
class Signals:
    """What the CLI's SIGINT/SIGTERM handler and the pipeline share.

    Python drops an exception raised inside a weakref callback or __del__ (it goes to sys.unraisablehook as
    "Exception ignored in ...", and the code goes on), so the handler's Interrupted can be lost: it also records
    the signal in `received`, which the pipeline checks at every stage boundary. Once the output starts moving into
    place the run is `committed`: a signal no longer stops it (it would stop it half written, or say "no output
    written" about a written one)."""

    received: list[int] = field(default_factory=list)
    committed: bool = False

    def reset(self) -> None:
        self.received.clear()
        self.committed = False

    def commit(self) -> None:
        """The last check before the output moves into place: from here the run completes."""
        raise_if_signalled()
        self.committed = True


SIGNALS = Signals()


def raise_if_signalled() -> None:
    if SIGNALS.received and not SIGNALS.committed:
        raise Interrupted(SIGNALS.received[0])


def interruption(exc: BaseException | None) -> BaseException | None:
    """The Interrupted (or KeyboardInterrupt) behind exc. Libraries re-raise what interrupted them as errors of their
    own: pybind11 turns a signal during `import onnxruntime` into "ImportError: initialization failed"."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (Interrupted, KeyboardInterrupt)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def raising_library(exc: BaseException) -> str | None:
    """The top-level package that raised exc (its innermost Python frame), or None when that frame is our own code."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    if str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(OUR_PACKAGES):
        return None
    return str(tb.tb_frame.f_globals.get("__name__", "a library")).split(".")[0]


@contextmanager
def library_failures_are_input_errors(stage: str) -> Iterator[None]:
    """The boundary between "bad input" (exit 2) and "our bug" (exit 1) for a stage that hands the user's graph to
    third-party code (tf2onnx, onnxslim, onnx, onnxscript, onnxruntime):

    - an exception whose innermost frame is in that library's code is the library refusing the user's graph (an
      allocation bomb, an IR or opset it cannot handle, a fixed batch it cannot run): exit 2, naming stage and cause;
    - MemoryError is the graph's size, wherever it is raised;
    - an exception raised by a statement of onnx_fuse/ or hls_backend/ (including a wrong call into a library, which
      fails in the calling frame) is our bug: it propagates and the CLI reports an internal error (exit 1).
    """
    try:
        yield
    except FuseError:
        raise
    except Exception as exc:
        if interruption(exc) is not None:  # a signal, not the graph
            raise
        if isinstance(exc, MemoryError):
            raise InputError(f"{stage}: out of memory on this graph ({first_line(exc)})") from exc
        library = raising_library(exc)
        if library is None:
            raise
        # onnxruntime puts its C++ source location and function signature before the message that matters
        cause = re.sub(r"/onnxruntime_src/\S+:\d+ .*?\) ", "", first_line(exc))
        raise InputError(f"{stage}: {library} failed on this graph: {type(exc).__name__}: {cause}") from exc
