"""examples/tutorial.py, run as a user runs it: load a QKeras model, fuse it in memory, convert, compile, predict,
compare accuracy, show what fusion saves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("qkeras", reason="the qkeras extra (qkeras-v3) is not installed")


@pytest.mark.hls
@pytest.mark.slow  # two compiles, ~30 s of CPU: the tutorial's steps are each covered by default tests
def test_the_tutorial_runs_and_shows_fused_equal_to_unfused(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "examples" / "tutorial.py")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "fused 2 Conv->Relu pairs" in out and "parity onnx vs fused: max abs err 0" in out
    accuracy = {line.split(":")[0].strip(): float(line.split(":")[1]) for line in out.splitlines()
                if line.strip().startswith(("QKeras model:", "hls4ml unfused:", "hls4ml fused:"))}
    # bit-exact against QKeras (README): all three agree, on 100 held-out digits
    assert accuracy["QKeras model"] == accuracy["hls4ml unfused"] == accuracy["hls4ml fused"] > 0.95, accuracy
    assert "fused == unfused, bit for bit: True" in out
    assert "| dataflow processes |" in out
    assert (tmp_path / "tutorial_out" / "fifo_bram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
