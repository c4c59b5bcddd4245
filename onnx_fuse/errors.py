"""Errors the CLI turns into one line and an exit code (see `onnx-fuse --help`)."""

from __future__ import annotations


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
