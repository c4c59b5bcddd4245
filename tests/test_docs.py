"""The docs stay true: recorded command output matches a rerun (blocks marked slow, which load TensorFlow, build
hls4ml projects or run benchmarks, under -m slow; `python tests/recorded.py --write` rewrites them all), the README's
usage is the one in docs/usage.md, and the site builds in strict mode."""

from __future__ import annotations

import pytest

import recorded
from conftest import REPO

CHEAP = [b for page in recorded.pages() for b in recorded.blocks(page) if not b.expensive]
EXPENSIVE = [b for page in recorded.pages() for b in recorded.blocks(page) if b.expensive]


def test_every_page_has_its_recorded_blocks_found():
    assert len(CHEAP) >= 1 and len(EXPENSIVE) >= 8


@pytest.mark.parametrize("block", CHEAP, ids=lambda b: f"{b.page.name}:{b.command[:50]}")
def test_recorded_output_matches_a_rerun(block):
    assert block.normal(recorded.produce(block)) == block.normal(block.text)


@pytest.mark.slow  # hls4ml builds and benchmarks: minutes each
@pytest.mark.parametrize("block", EXPENSIVE, ids=lambda b: f"{b.page.name}:{b.command[:50]}")
def test_expensive_recorded_output_matches_a_rerun(block):
    assert block.normal(recorded.produce(block)) == block.normal(block.text)


def test_readme_usage_is_the_reference_usage():
    readme, usage = (REPO / "README.md").read_text(), (REPO / "docs" / "usage.md").read_text()
    options = readme[readme.index("```\nonnx-fuse MODEL"):readme.index("\n\nExit codes:")]
    assert options in usage
    assert len(readme.splitlines()) < 250


def test_the_site_builds_in_strict_mode(tmp_path):
    """A broken link, a missing anchor or a page left out of the navigation fails the build (mkdocs.yml). Not
    --quiet: mkdocs 1.6 then drops the warnings that strict mode turns into a failure."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
