"""Output-path checks and atomic writes: a failed run leaves no partial file and never touches the input."""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from onnx_fuse.errors import SIGNALS, InputError

if TYPE_CHECKING:  # the CLI's preflight imports this module before onnx is needed
    import onnx

# Linux <linux/fs.h>: the inode flags `chattr` sets. rename() cannot replace an immutable or append-only file.
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def check_output_path(input_path: Path, output_path: Path) -> None:
    if output_path.suffix.lower() != ".onnx":
        raise InputError(f"output must be an .onnx file: {output_path}")
    if output_path.is_dir():
        raise InputError(f"output is a directory: {output_path}")
    if input_path.exists() and output_path.exists() and output_path.samefile(input_path):
        raise InputError(f"output would overwrite the input: {output_path}")
    parent = output_path.parent
    if not parent.is_dir():
        raise InputError(f"output directory does not exist: {parent}")
    try:  # os.access lies for root and on some mounts: try for real
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"output directory is not writable: {parent} ({exc.strerror})") from exc
    if output_path.exists() and not output_path.is_file():
        raise InputError(f"output exists and is not a regular file: {output_path}")
    if output_path.is_file() and inode_flags(output_path) & (FS_IMMUTABLE_FL | FS_APPEND_FL):
        raise InputError(f"output is immutable or append-only (chattr), it cannot be replaced: {output_path}")


def inode_flags(path: Path) -> int:
    """The file's chattr flags; 0 where the filesystem or OS has none."""
    try:
        with open(path, "rb") as handle:
            buffer = bytearray(8)  # the kernel writes an int; 8 bytes covers the ioctl's declared long
            fcntl.ioctl(handle.fileno(), FS_IOC_GETFLAGS, buffer)
    except OSError:
        return 0
    return struct.unpack("i", buffer[:4])[0]


def new_file_mode(path: Path) -> int:
    """A replaced file keeps its permission bits; a new one gets what open() would give it: 0o666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    # Python can only read the umask by setting it; Linux reports it in /proc, which leaves it alone for the
    # other threads (onnxruntime's, TensorFlow's) that may create files meanwhile.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_atomic(model: onnx.ModelProto, path: Path) -> None:
    """Temp file in the target directory (mkstemp's mode 0600 replaced by new_file_mode), fsync, rename."""
    mode = new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(model.SerializeToString())
            handle.flush()
            os.fsync(handle.fileno())
        SIGNALS.commit()
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # ENOSPC, EDQUOT, EIO, EPERM ...: the disk or the file, not our code
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
