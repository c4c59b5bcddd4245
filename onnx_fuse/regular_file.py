"""Open a user's input file only when it is a regular file: a FIFO blocks a read forever, /dev/zero never ends."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from onnx_fuse.errors import InputError


def open_regular(path: Path, what: str) -> BinaryIO:
    """Open for reading; refuse FIFOs, devices, sockets and directories (checked on the opened file, no race)."""
    try:
        # O_NONBLOCK: opening a FIFO that has no writer returns at once instead of waiting for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{what} {path} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
