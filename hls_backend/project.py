"""Read facts back from a written hls4ml project (what the tests and reports check in myproject.cpp)."""

from __future__ import annotations

import re
from pathlib import Path

# Declarations inside the top function body; the top's own stream arguments are references ('&').
STREAM_DECL = re.compile(r"^\s*hls::stream<[^>]+>\s+\w+\s*\(", re.M)
# One dataflow process per layer call (weights loading uses nnet::load_weights_from_txt, not a process).
LAYER_CALL = re.compile(r"^\s*nnet::(?!load_weights)(\w+)<.*//\s*(\S+)\s*$", re.M)


def top_source(output_dir: str | Path, project_name: str = "myproject") -> str:
    return (Path(output_dir) / "firmware" / f"{project_name}.cpp").read_text()


def stream_count(output_dir: str | Path, project_name: str = "myproject") -> int:
    return len(STREAM_DECL.findall(top_source(output_dir, project_name)))


def layer_calls(output_dir: str | Path, project_name: str = "myproject") -> list[tuple[str, str]]:
    """(nnet function, layer name) for each layer call in the top function, in order."""
    return LAYER_CALL.findall(top_source(output_dir, project_name))
