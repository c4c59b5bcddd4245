"""Recorded command output in README.md and docs/*.md, kept true: each fenced block preceded by

    <!-- recorded: COMMAND -->   or   <!-- recorded (slow): COMMAND -->
    or   <!-- recorded (slow, timings): COMMAND -->

is COMMAND's output (stdout and stderr), run in a scratch directory where `models/` is the repo's; a block preceded
by `<!-- recorded: $ -->` holds `$ COMMAND` lines each followed by its output. `python tests/recorded.py --write
[PAGE ...]` reruns every command (of the pages named, or of all) and rewrites the blocks; without --write the script
compares (timings excepted), as tests/test_docs.py does (the blocks marked slow under -m slow). A block marked
`timings` is a benchmark table whose every number is a measurement: its rerun must print the same rows and words.
A `setup:` clause names a function below that prepares the directory."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- recorded( \(slow(, timings)?\))?: (.*?)(?:; setup: (\w+))? -->\n```\n(.*?)```\n", re.S)
# what varies from run to run: stage timings, hls4ml's compile/predict seconds
VARYING = [(re.compile(r"^(\s*time:).*$", re.M), r"\1 ...")]
MEASURED = re.compile(r"\d+(?:\.\d+)?")  # in a timings block, every number


@dataclass
class Block:
    page: Path
    expensive: bool  # marked "(slow)": loads TensorFlow, builds hls4ml projects or runs a benchmark
    timings: bool  # marked "(slow, timings)": a benchmark's measurements
    command: str
    setup: str | None
    text: str
    start: int
    end: int

    def normal(self, text: str) -> str:
        """`text` with what varies between runs of this block's command masked."""
        return normal(text, self.timings)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(page, bool(m.group(1)), bool(m.group(2)), m.group(3), m.group(4), m.group(5), m.start(5), m.end(5))
            for m in MARKER.finditer(text)]


def mine(folder: Path) -> None:
    (folder / "mine").mkdir()
    (folder / "mine" / "notes.txt").write_text("my notes\n")


def untrusted(folder: Path) -> None:
    """A tf-keras .h5 whose Lambda would create `pwned` if its bytecode ever ran."""
    import tf_keras as k

    from test_keras_safety import touching_lambda

    inp = k.Input((4,))
    lam = k.layers.Lambda(touching_lambda(folder / "pwned"), name="lambda")
    k.Model(inp, k.layers.Dense(3, activation="relu")(lam(inp))).save(folder / "untrusted.h5")
    (folder / "pwned").unlink()  # building the model called the Lambda once


def keras2_cnn(folder: Path) -> None:
    """tests/test_legacy.py's Keras-2-era model, saved by tf-keras as .h5, .json and weights."""
    import tf_keras

    from test_legacy import keras2_model

    tf_keras.backend.clear_session()  # layer names count from 1 whatever ran before in this process
    model = keras2_model()
    model.save(folder / "keras2_cnn.h5")
    (folder / "keras2_cnn.json").write_text(model.to_json())
    model.save_weights(folder / "keras2_cnn_weights.h5")


def onnx_classes(folder: Path) -> None:
    """docs/file-classes-onnx.md's files, made by the tests' own builders."""
    import numpy as np
    import onnx

    from qdq_graphs import qdq_cnn
    from test_channels_last import channels_last
    from test_input_runs import ir3_dense_bn
    from test_qdq import ties
    from test_qonnx_params import qonnx04_style

    onnx.save(qdq_cnn(input_zero_point=37, input_type=np.uint8), str(folder / "qdq_zp37.onnx"))
    onnx.save(qdq_cnn(), str(folder / "qdq_po2.onnx"))
    np.save(folder / "ties.npy", ties(16))
    onnx.save(qonnx04_style(onnx.load(str(REPO / "models" / "digits_qcnn_po2.onnx"))),
              str(folder / "digits_qcnn_po2_qonnx04.onnx"))
    channels_last("digits_qcnn_po2", folder / "digits_qcnn_po2_ch_last.onnx")
    onnx.save(ir3_dense_bn(channels_in_scale=1), str(folder / "three_layer_bn.onnx"))


def tflite_faults(folder: Path) -> None:
    """tf.linalg.det as a Flex op and as a custom op (tests/test_tflite.py's files), and a truncated .tflite."""
    from test_tflite import write_foreign_op_files

    write_foreign_op_files(folder)
    whole = (REPO / "models" / "mlperf_dscnn_float.tflite").read_bytes()
    (folder / "trunc.tflite").write_bytes(whole[: len(whole) // 3])


def tiny2_json(folder: Path) -> None:
    """tiny2_qkeras.json + tiny2_qkeras_weights.h5 as tests/test_qkeras_json.py makes them from the 2021 .h5."""
    from test_qkeras_json import keras2_pair

    keras2_pair(REPO / "models" / "tiny2_qkeras.h5", folder)


def padded_pool(folder: Path) -> None:
    import onnx

    from test_torch_hls import padded_pool_model

    onnx.save(padded_pool_model(), str(folder / "pool.onnx"))


SETUPS = {"mine": mine, "untrusted": untrusted, "keras2_cnn": keras2_cnn, "onnx_classes": onnx_classes,
          "tflite_faults": tflite_faults, "tiny2_json": tiny2_json, "padded_pool": padded_pool}


def run(command: str, folder: Path) -> str:
    shell = command.replace("python ", f"{sys.executable} ", 1) if command.startswith("python ") else command
    result = subprocess.run(shell, shell=True, cwd=folder, capture_output=True, text=True, timeout=3600)
    return result.stderr + result.stdout


def produce(block: Block) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "models").symlink_to(REPO / "models")
        (folder / "bench").symlink_to(REPO / "bench")
        if block.setup:
            SETUPS[block.setup](folder)
        if block.command != "$":
            return run(block.command, folder)
        out, lines = [], iter(block.text.splitlines())
        for line in lines:
            if line.startswith("$ "):
                command = [line]
                while command[-1].endswith("\\"):  # a command continued on the next line
                    command.append(next(lines))
                out += [*command, *run("\n".join(command)[2:], folder).splitlines()]
        return "\n".join(out) + "\n"


def normal(text: str, timings: bool = False) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return re.sub(r"[ \t]+", " ", MEASURED.sub("N", text)) if timings else text  # numbers' widths move columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rerun every command and rewrite its block")
    parser.add_argument("--cheap", action="store_true", help="only commands that build no hls4ml project")
    parser.add_argument("page", nargs="*", type=Path, help="only these pages (default: README.md and docs/*.md)")
    args = parser.parse_args(argv)
    stale = 0
    for page in [p.resolve() for p in args.page] or pages():
        found = [b for b in blocks(page) if not (args.cheap and b.expensive)]
        text = page.read_text()
        for block in reversed(found):  # rewrite from the end: earlier offsets stay valid
            fresh = produce(block)
            same = block.normal(fresh) == block.normal(block.text)
            if args.write and not same:  # timings alone do not churn the page
                text = text[: block.start] + fresh + text[block.end :]
            elif not same:
                stale += 1
                print(f"{page.relative_to(REPO)}: recorded output of `{block.command}` is stale", file=sys.stderr)
        if args.write:
            page.write_text(text)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
