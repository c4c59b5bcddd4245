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


# hls4ml functions whose presence before a marked activation explains why it kept its stage.
WHY_NOT_FUSED = {"normalize": "hls4ml's ApplyAlpha with a per-channel scale or bias, which this layer's write-back cannot index (hls4ml's Vitis io_stream Dense casts each output without the output channel)"}
# templates.EPILOGUE_MARKER lines: "<marker>: <stage> (<hls layer>) into <producer>"
EPILOGUE_LINE = re.compile(r"// onnx_fuse: epilogue in the write-back: (\S+) \((\w+)\) into (\S+)")


def write_back_stages(output_dir: str | Path) -> list[tuple[str, str, str]]:
    """(stage, hls layer, producer) for each epilogue stage a fused project computes in a producer's write-back."""
    return EPILOGUE_LINE.findall((Path(output_dir) / "firmware" / "parameters.h").read_text())


def absorbed_stages(output_dir: str | Path) -> list[str]:
    """Each epilogue stage a fused project computes in a producer's write-back, as "stage (layer) into producer"."""
    return [f"{stage} ({layer}) into {producer}" for stage, layer, producer in write_back_stages(output_dir)]


def kept_stages(output_dir: str | Path, marked: dict[str, str], project_name: str = "myproject") -> list[str]:
    """One line per marked activation (name -> fused op) that still has its own stage in a fused project, saying
    what feeds it instead of a conv or Dense write-back."""
    calls = layer_calls(output_dir, project_name)
    # producer -> the stage its write-back holds
    holding = {producer: stage for stage, _, producer in write_back_stages(output_dir)}
    lines = []
    for i, (function, name) in enumerate(calls):
        if name not in marked:
            continue
        before = f"nnet::{calls[i - 1][0]} '{calls[i - 1][1]}'" if i else "the model input"
        hint = WHY_NOT_FUSED.get(calls[i - 1][0], "") if i else ""
        if i >= 2 and calls[i - 2][1] in holding:
            hint = (f"which follows {calls[i - 2][1]}, whose write-back holds {holding[calls[i - 2][1]]} already "
                    "(one epilogue stage per write-back)")
        lines.append(f"{name} ({marked[name]}) keeps its {function} stage: its input comes from {before}"
                     + (f", {hint}" if hint else "") + ", not from the producer's write-back")
    return lines
