"""The README: every ```python block runs as written (they assert their own results), it
stays short, and it keeps the two set-up commands that CI (``.ci/run``) runs verbatim."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.S | re.M)

#: the patterns ``.ci/run`` greps for (``grep -m1 -E``): its two set-up commands
CI_COMMANDS = (r"^pip install .*&& python -m pytest", r"^pip install .*&& python -m conformance")


def test_readme_has_examples():
    assert len(BLOCKS) >= 5  # one per method


def test_readme_is_short():
    n = len(TEXT.splitlines())
    assert n <= 200, f"README.md has {n} lines; details belong in docs/"


@pytest.mark.parametrize("pattern", CI_COMMANDS)
def test_readme_has_the_set_up_command_ci_runs(pattern):
    assert re.search(pattern, TEXT, flags=re.M), f"README.md lacks a line matching {pattern!r}"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code):
    if "import torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, str(README), "exec"), {})
