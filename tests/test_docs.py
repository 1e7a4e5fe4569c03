"""Every ```python block of each teaching page in docs/ runs as written.

Blocks of one page run in order in one namespace (a page builds its example step by step).
A page whose code imports torch, matplotlib or plenoptic skips when that is not installed.
"""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md")) if DOCS.is_dir() else []
OPTIONAL = ("torch", "matplotlib", "plenoptic", "captum", "jax", "optax")


def _blocks(page: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_doc_page_runs(page, tmp_path, monkeypatch):
    blocks = _blocks(page)
    code = "\n".join(blocks)
    for mod in OPTIONAL:
        if re.search(rf"^\s*(import|from)\s+{mod}\b", code, flags=re.M):
            pytest.importorskip(mod)
    monkeypatch.chdir(tmp_path)  # pages that save files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")  # figures render off-screen
    ns: dict = {"__name__": f"docs.{page.stem}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page}:block{i}", "exec"), ns)


def _excerpts(page: pathlib.Path) -> list[tuple[str, str]]:
    """``py`` blocks whose first line is ``# path/of/file.py``: (path, code) pairs."""
    out = []
    for block in re.findall(r"^```py\n(.*?)^```", page.read_text(), flags=re.S | re.M):
        first, _, rest = block.partition("\n")
        if first.startswith("# ") and first.endswith(".py"):
            out.append((first[2:].strip(), rest))
    return out


EXCERPTS = [(p, path, code) for p in PAGES for path, code in _excerpts(p)]


@pytest.mark.parametrize(
    "page, path, code",
    EXCERPTS,
    ids=[f"{p.stem}:{path}:{i}" for i, (p, path, _) in enumerate(EXCERPTS)],
)
def test_doc_excerpt_matches_the_source(page, path, code):
    """A teaching page quotes the library verbatim: the excerpt's lines appear, in order and
    contiguous, in the file it names."""
    source = (DOCS.parent / path).read_text()
    assert code.strip("\n") in source, f"{page.name} quotes {path}, which no longer contains it"
