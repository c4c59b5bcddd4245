"""The sweep's output directory, under the --hls-out rules: DIR is new, empty, or an earlier sweep's (its
DIR/.onnx-fuse.json lists what onnx-fuse writes there); a non-empty DIR of other files needs --force, and an entry
named like one of ours that onnx-fuse did not write is refused even then. Nothing else in DIR is ever touched.

Every write is atomic (a temporary name in DIR, then a rename): a finished point is DIR/points/<point-id>/ with
its row.json (and its projects on request), or it is not there at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from onnx_fuse.errors import InputError

ENTRIES = ("points", "results.csv", "sweep.md", "sweep.png")
MANIFEST = ".onnx-fuse.json"
STAGING_PREFIX = ".onnx-fuse-staging-"
WRITTEN_BY = "onnx-fuse sweep"
UMASK = os.umask(0o022)
os.umask(UMASK)


def earlier_sweep(out_dir: Path) -> bool:
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("written_by") == WRITTEN_BY


def check_out_dir(out_dir: Path, inputs: list[Path], force: bool) -> None:
    """Everything about DIR that can be checked before any work."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out is a file, not a directory: {out_dir}")
    if not out_dir.parent.is_dir():
        raise InputError(f"--out parent directory does not exist: {out_dir.parent}")
    target = out_dir.resolve()
    for path in inputs:
        resolved = path.resolve()
        if resolved == target or any(resolved.is_relative_to(target / name) for name in ENTRIES + (MANIFEST,)):
            raise InputError(f"--out {out_dir} would overwrite the input {path}")
    try:  # O_TMPFILE probe: no name appears
        with tempfile.TemporaryFile(dir=out_dir if out_dir.exists() else out_dir.parent):
            pass
    except OSError as exc:
        raise InputError(f"--out {out_dir} is not writable ({exc.strerror})") from exc
    if not out_dir.exists() or earlier_sweep(out_dir):
        return
    if (out_dir / MANIFEST).exists():
        raise InputError(f"--out {out_dir} holds another onnx-fuse output (an --hls-out DIR), not a sweep's: "
                         "choose a new or empty directory")
    others = [p for p in out_dir.iterdir() if not p.name.startswith(STAGING_PREFIX)]
    if others and not force:
        raise InputError(
            f"--out {out_dir} is not empty and holds no earlier onnx-fuse sweep: choose a new or empty directory, "
            "or pass --force to add the sweep next to its files"
        )
    for name in ENTRIES + (MANIFEST,):
        if (out_dir / name).exists() or (out_dir / name).is_symlink():
            raise InputError(f"--out: {out_dir / name} exists and onnx-fuse did not write it; move it away first")


class OutDir:
    """DIR during a sweep. `close(keep)` removes DIR again if this run created it and nothing was kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created = not path.exists()
        path.mkdir(exist_ok=True)
        self.fresh = not earlier_sweep(path)
        if self.fresh:
            self.write(MANIFEST, json.dumps({"written_by": WRITTEN_BY, "entries": list(ENTRIES)}) + "\n")
        (path / "points").mkdir(exist_ok=True)

    def finished(self, point_id: str) -> dict | None:
        try:
            row = json.loads((self.path / "points" / point_id / "row.json").read_text())
        except (OSError, ValueError):
            return None
        return row if isinstance(row, dict) and row.get("point_id") == point_id else None

    def write(self, name: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=STAGING_PREFIX)
        try:
            os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; a result file gets the umask's mode
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def write_point(self, row: dict, projects: bytes | None) -> None:
        points = self.path / "points"
        staging = Path(tempfile.mkdtemp(dir=points, prefix=STAGING_PREFIX))
        try:
            entry = staging / "point"
            entry.mkdir()
            (entry / "row.json").write_text(json.dumps(row, indent=1) + "\n")
            if projects is not None:
                import io

                with tarfile.open(fileobj=io.BytesIO(projects), mode="r:gz") as tar:
                    tar.extractall(entry, filter="data")
            final = points / row["point_id"]
            if final.exists():  # --retry-failed: the earlier row goes
                os.rename(final, staging / "replaced")
            os.rename(entry, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def close(self, kept_anything: bool) -> None:
        """Remove what this run made when it kept nothing (DIR as it was)."""
        if kept_anything or not self.fresh:
            return
        with contextlib.suppress(OSError):
            (self.path / "points").rmdir()
            (self.path / MANIFEST).unlink()
            if self.created:
                self.path.rmdir()
