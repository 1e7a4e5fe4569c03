"""The documents: every ```python block of each page in docs/ runs as written, quoted
excerpts match the source, the repository's documents stand alone, and every test they name
exists.

Blocks of one page run in order in one namespace (a page builds its example step by step).
A page whose code imports torch, matplotlib or plenoptic skips when that is not installed.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
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
    # The committed figures are the ones this code draws (Agg renders deterministically for
    # one matplotlib release; the tolerance absorbs font rendering across releases).
    for name in _make_figures().figures(page):
        from matplotlib.testing.compare import compare_images

        stale = compare_images(str(DOCS / name), str(tmp_path / name), tol=6)
        assert stale is None, f"docs/{name} is stale: run python docs/make_figures.py\n{stale}"


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


# -- the documents stand alone ---------------------------------------------------------------
#: paths of material that exists only in the development workspace, never in a user's
#: checkout (built from pieces so that this file does not name them itself)
INTERNAL = tuple(
    a + b for a, b in (("shared", "/"), ("specs", "/"), ("seeds", "/"), ("DESIGN", ".md"))
)


def _repository_files() -> list[pathlib.Path]:
    """Tracked files, plus new ones git does not ignore (present on disk)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    names = sorted({n for n in proc.stdout.decode().split("\0") if n})
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def _text(path: pathlib.Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_reference_to_internal_material():
    """No file of the repository points at the development workspace's specification,
    seed pages or design notes: a user's checkout has none of them (docs/design.md and
    docs/differences.md say what they said, citing public sources)."""
    hits = []
    for path in _repository_files():
        text = _text(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for pattern in INTERNAL:
                if pattern in line:
                    hits.append(f"{path.relative_to(ROOT)}:{lineno}: {pattern}")
    assert not hits, f"{len(hits)} references to internal material:\n" + "\n".join(hits)


# -- every test a document names exists -------------------------------------------------------
#: ``tests/....py`` optionally followed by ``::name`` or ``::Class::method``
TEST_REF = re.compile(r"\btests/[\w/]+\.py(?:::\w+)*")
DOCUMENTS = [ROOT / "README.md", *PAGES]


def _defines(source: str, name: str, kind: str = r"(?:async\s+def|def|class)") -> bool:
    return re.search(rf"^\s*{kind}\s+{name}\b", source, flags=re.M) is not None


def _unresolved(ref: str) -> str | None:
    """None when ``ref`` resolves, else why not."""
    path, *names = ref.split("::")
    file = ROOT / path
    if not file.is_file():
        return "no such file"
    source = file.read_text()
    if len(names) == 1 and not _defines(source, names[0]):
        return f"defines no {names[0]}"
    if len(names) == 2:
        cls = re.search(rf"^class\s+{names[0]}\b.*?(?=^\S|\Z)", source, flags=re.M | re.S)
        if cls is None:
            return f"defines no class {names[0]}"
        if not _defines(cls.group(0), names[1], kind=r"(?:async\s+def|def)"):
            return f"class {names[0]} defines no {names[1]}"
    if len(names) > 2:
        return "expected file::name or file::Class::method"
    return None


def test_test_references_in_the_documents_resolve():
    """README.md and docs/*.md name tests as ``tests/path.py::test_name`` (or
    ``::Class::method``): each file exists and defines that name."""
    bad = []
    for doc in DOCUMENTS:
        if not doc.is_file():
            continue
        for ref in sorted(set(TEST_REF.findall(doc.read_text()))):
            why = _unresolved(ref)
            if why is not None:
                bad.append(f"{doc.relative_to(ROOT)}: {ref}: {why}")
    assert not bad, "stale test references:\n" + "\n".join(bad)


def _bullets(text: str) -> list[str]:
    """The top-level list items of ``text``, continuation lines joined."""
    items: list[str] = []
    open_item = False
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line)
            open_item = True
        elif open_item and line.startswith("  ") and line.strip():
            items[-1] += " " + line.strip()
        else:
            open_item = False
    return items


def test_differences_name_the_test_that_pins_each_item():
    """Every item of docs/differences.md under a library heading names a test (or says
    plainly that none pins it yet)."""
    page = DOCS / "differences.md"
    text = page.read_text()
    body = text[text.index("\n## ") :]  # the introduction's list explains the kinds of item
    bare = [
        item[:100]
        for item in _bullets(body)
        if not re.search(r"tests/[\w/]+\.py::\w+", item) and "No test pins" not in item
    ]
    assert not bare, "items of docs/differences.md without a test:\n" + "\n".join(bare)


# -- every figure comes from its page's code ---------------------------------------------------
#: ``![alt text](name.png)``, the alt text possibly over several lines
FIGURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def _make_figures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_is_drawn_by_a_block_of_its_page():
    """Each PNG a page shows exists and is saved by one of that page's ```python blocks, so
    ``python docs/make_figures.py`` regenerates it (test_doc_page_runs runs those blocks)."""
    make_figures = _make_figures()
    bad = []
    for page in PAGES:
        drawn = make_figures.figures(page)
        for name in FIGURE.findall(page.read_text()):
            if name not in drawn:
                bad.append(f"{page.name}: {name} is not saved by a ```python block of the page")
            elif not (DOCS / name).is_file():
                bad.append(f"{page.name}: {name} does not exist: run python docs/make_figures.py")
    assert not bad, "\n".join(bad)
    pages = {page.name for page in make_figures.figure_pages()}
    assert {"eigendistortion.md", "noise_tunnel.md"} <= pages


def test_make_figures_lists_the_figures_and_refuses_unknown_pages(capsys):
    make_figures = _make_figures()
    assert make_figures.main(["--list", "noise_tunnel"]) == 0
    assert capsys.readouterr().out == "noise_tunnel.md: noise_tunnel.png\n"
    with pytest.raises(SystemExit, match="'design' is not a page with a figure"):
        make_figures.main(["--list", "design"])
