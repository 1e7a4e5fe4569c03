"""Regenerate the figures of the documentation: ``python docs/make_figures.py [page ...]``.

Every figure shown by a page of docs/ is drawn by that page's own code: a ```python block
that calls ``savefig("name.png", ...)``. This script runs, for each page that has such a
block, the page's ```python blocks in order in one namespace (a page builds its example
step by step, as tests/test_docs.py runs it), up to and including its last figure block,
from the docs/ directory, so that the PNG files are written next to the pages. Figures
render off-screen (the Agg backend).

``page``: page names (``noise_tunnel``, ``eigendistortion.md``) to regenerate only those;
``--list``: print the pages and the figures they write, run nothing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent

#: ``savefig("name.png"`` (or with single quotes) in a block: the figure it writes
SAVEFIG = re.compile(r"""savefig\(\s*["']([^"']+)["']""")


def blocks(page: pathlib.Path) -> list[str]:
    """The page's ```python blocks, in order (the blocks tests/test_docs.py runs)."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def figures(page: pathlib.Path) -> list[str]:
    """The files the page's blocks save, in order."""
    return [name for block in blocks(page) for name in SAVEFIG.findall(block)]


def figure_pages() -> list[pathlib.Path]:
    """The pages of docs/ with at least one figure block."""
    return [page for page in sorted(DOCS.glob("*.md")) if figures(page)]


def run_page(page: pathlib.Path) -> list[str]:
    """Run the page's blocks up to its last figure block, in docs/; the figures written."""
    code = blocks(page)
    last = max(i for i, block in enumerate(code) if SAVEFIG.search(block))
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    cwd = os.getcwd()
    os.chdir(DOCS)
    try:
        for i, block in enumerate(code[: last + 1]):
            exec(compile(block, f"{page}:block{i}", "exec"), namespace)
    finally:
        os.chdir(cwd)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    return figures(page)


def _select(names: list[str]) -> list[pathlib.Path]:
    pages = figure_pages()
    if not names:
        return pages
    by_stem = {page.stem: page for page in pages}
    chosen = []
    for name in names:
        stem = pathlib.Path(name).stem
        if stem not in by_stem:
            raise SystemExit(
                f"make_figures: {name!r} is not a page with a figure; pages: "
                + ", ".join(sorted(by_stem))
            )
        chosen.append(by_stem[stem])
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="page names (default: every page)")
    parser.add_argument("--list", action="store_true", help="list the figures, run nothing")
    args = parser.parse_args(argv)
    pages = _select(args.pages)
    if args.list:
        for page in pages:
            print(f"{page.name}: {', '.join(figures(page))}")
        return 0
    os.environ["MPLBACKEND"] = "Agg"  # before matplotlib is imported
    sys.path.insert(0, str(ROOT))  # the packages of this checkout
    for page in pages:
        start = time.perf_counter()
        written = run_page(page)
        seconds = time.perf_counter() - start
        print(f"{page.name}: {', '.join(f'docs/{w}' for w in written)} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
