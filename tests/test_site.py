"""The documentation site: built by Sphinx with warnings as errors, then read in a real browser.

The build runs wherever the ``docs`` extra is installed. The browser checks run in headless
Chromium (the Debian ``chromium`` package, driven by playwright; set ``REFIMPL_CHROMIUM`` to
another binary) and skip without it, unless ``REFIMPL_REQUIRE_BROWSER`` is set (CI sets it).
For every page they assert: every formula typeset by the site's own MathJax (as many typeset
formulas as the source has, none in error, no raw TeX left in the text), every image loaded,
every internal link and anchor resolves, no console error, and no request to another host.
One screenshot per page is kept in ``docs/_build/screenshots/`` (with ``formulas.json``, the
typeset count per page).
"""

from __future__ import annotations

import functools
import html
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SHOTS = DOCS / "_build" / "screenshots"
BUILD_COMMAND = "python -m sphinx -W --keep-going -b html docs docs/_build/html"

# Every source page of the site, as the name of its HTML page.
PAGES = sorted(
    [p.stem for p in DOCS.glob("*.md")]
    + [f"api/{p.stem}" for p in (DOCS / "api").glob("*") if p.suffix in (".md", ".rst")]
)


def _needs_sphinx() -> None:
    for mod in ("sphinx", "myst_parser", "pydata_sphinx_theme"):
        pytest.importorskip(mod, reason="the docs extra is not installed")


# -- the build ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> pathlib.Path:
    """A fresh build (-E: no saved environment, so every warning shows) in a temporary folder."""
    _needs_sphinx()
    out = tmp_path_factory.mktemp("site") / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
    run = subprocess.run(
        [*cmd, str(DOCS), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"sphinx failed:\n{run.stdout}\n{run.stderr}"
    assert "WARNING" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    return out


def test_readme_gives_the_build_command():
    assert BUILD_COMMAND in (ROOT / "README.md").read_text()
    assert "docs/_build/html/index.html" in (ROOT / "README.md").read_text()


def test_site_builds_every_page_with_local_mathjax(site):
    for name in PAGES:
        assert (site / f"{name}.html").is_file(), name
    mathjax = site / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.is_file(), "MathJax is not shipped with the site"
    page = (site / "eigendistortion.html").read_text()  # pages without math load no MathJax
    assert "_static/mathjax/tex-chtml.js" in page and "cdn.jsdelivr" not in page


PUBLIC = {
    "api/perturbations": ["refimpl.perturbations"],
    "api/optim": ["refimpl.optim"],
    "api/perturbed": ["refimpl.perturbed"],
    "api/attr": ["refimpl.attr"],
    "api/eigendistortion": ["refimpl.eigendistortion"],
    "api/linops": ["refimpl.linops"],
    "api/models": ["refimpl.models"],
    "api/backends": ["backends"],
    "api/conformance": ["conformance"],
    "api/validation": ["refimpl.validation"],
    "api/distributed": ["refimpl.distributed"],
    "api/torch": [
        f"refimpl.torch.{m}"
        for m in (
            "perturbations",
            "optim",
            "perturbed",
            "attr",
            "eigendistortion",
            "models",
            "solvers",
        )
    ],
    "api/jax": ["refimpl.jax"],
}
#: the API pages of front ends, and the library each needs
FRONT_ENDS = {"api/torch": "torch", "api/jax": "jax"}


@pytest.mark.parametrize("page", sorted(PUBLIC))
def test_api_reference_lists_every_public_name(site, page):
    if page in FRONT_ENDS:
        pytest.importorskip(FRONT_ENDS[page])
    text = (site / f"{page}.html").read_text()
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    for module in PUBLIC[page]:
        names = importlib.import_module(module).__all__
        missing = [n for n in names if f"{module}.{n}" not in ids]
        assert not missing, f"{page}: {module}.__all__ names without an entry: {missing}"


def test_docstrings_hold_no_control_characters():
    r"""A backslash in a non-raw docstring (``"\frac"``) silently becomes a form feed."""
    bad = []
    for objects in PUBLIC.values():
        for module in objects:
            front_end = module.split(".")[1] if module.startswith("refimpl.") else ""
            if front_end in ("torch", "jax") and importlib.util.find_spec(front_end) is None:
                continue
            for obj, _ in _documented(importlib.import_module(module)):
                doc = inspect.getdoc(obj) or ""
                if any(ord(c) < 32 and c not in "\n" for c in doc):
                    bad.append(getattr(obj, "__qualname__", repr(obj)))
    assert not bad, bad


# -- formulas in the sources ---------------------------------------------------------------


def _documented(module):
    """(object, its docstring) for what the API page renders: the module, each name of
    ``__all__``, and the public members a class defines (autodoc's ``members`` with
    ``special-members: __call__``)."""
    seen = [module]
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        seen.append(obj)
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") and member != "__call__":
                    continue
                value = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
                if isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value) and value.__doc__:
                    seen.append(value)
    return [(o, inspect.getdoc(o) or "") for o in seen]


def _rst_formulas(doc: str) -> int:
    return len(re.findall(r":math:`", doc)) + len(re.findall(r"^\s*\.\. math::", doc, re.M))


def _markdown_formulas(text: str) -> int:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    display = re.findall(r"\$\$.+?\$\$", text, flags=re.S)
    text = re.sub(r"\$\$.+?\$\$", "", text, flags=re.S)
    inline = re.findall(r"(?<![\\$])\$(?=\S)(?:[^$\n]|\n(?!\n))+?(?<=\S)\$(?!\d)", text)
    return len(display) + len(inline)


@functools.cache
def expected_formulas(page: str) -> int | None:
    """Formulas in the page's source: ``$..$``/``$$..$$`` in Markdown, ``:math:`` roles and
    ``math`` directives in the docstrings of an API page; None where not countable."""
    source = DOCS / f"{page}.md"
    if source.is_file():
        return _markdown_formulas(source.read_text())
    if page in PUBLIC:
        total = 0
        for module in PUBLIC[page]:
            total += sum(_rst_formulas(d) for _, d in _documented(importlib.import_module(module)))
        return total
    return None


def test_formula_counting_rules():
    md = "a $x$ and `$no$` and $$y = 1$$ and\n```python\n$z$\n```\ncost $5 or $6 and $a_1$."
    assert _markdown_formulas(md) == 3
    assert _markdown_formulas("one $a +\nb$ over two lines; not $c\n\nd$") == 1
    assert _rst_formulas("y :math:`a` and\n\n.. math::\n\n    b\n") == 2


# -- the browser ---------------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _chromium() -> str | None:
    given = os.environ.get("REFIMPL_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    required = os.environ.get("REFIMPL_REQUIRE_BROWSER")  # CI: a missing browser fails
    if executable is None:
        if required:
            pytest.fail("REFIMPL_REQUIRE_BROWSER is set but there is no Chromium")
        pytest.skip("no Chromium (apt-get install -y chromium)")
    if required:
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Visit:
    """One page opened in the browser, with what it logged and requested."""

    def __init__(self, browser, url: str) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.route("**/*", self._route)
        self.page.goto(url, wait_until="load")

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:", "file:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def close(self) -> None:
        self.page.close()


_INSPECT = """async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const maths = Array.from(document.querySelectorAll('span.math, div.math'));
  const text = document.body.cloneNode(true);
  text.querySelectorAll('pre, code, .highlight, mjx-container, script, style')
      .forEach(n => n.remove());
  return {
    formulas: maths.length,
    typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    in_error: document.querySelectorAll('mjx-merror').length,
    text: text.textContent,
    images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete,
                                                    i.naturalWidth]),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  };
}"""

_RAW_TEX = ("$$", "\\(", "\\)", "\\[", ":math:", "\\begin{", "\\frac")


@functools.cache
def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8", "replace")


def _anchors(text: str) -> set[str]:
    return {html.unescape(a) for a in re.findall(r'\b(?:id|name)="([^"]+)"', text)}


def _broken_links(links: list[str], origin: str) -> list[str]:
    broken = []
    for link in links:
        if not link.startswith(origin):
            continue  # another host: a reference, never requested by the page itself
        target, fragment = urldefrag(link)
        try:
            text = _fetch(target)
        except urllib.error.HTTPError as exc:
            broken.append(f"{link}: HTTP {exc.code}")
            continue
        if fragment and target.endswith(".html") and unquote(fragment) not in _anchors(text):
            broken.append(f"{link}: no anchor #{fragment}")
    return broken


_COUNTS: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("page", PAGES)
def test_page_in_the_browser(page, server, browser):
    if page in FRONT_ENDS:
        pytest.importorskip(FRONT_ENDS[page])
    visit = Visit(browser, f"{server}/{page}.html")
    try:
        seen = visit.page.evaluate(_INSPECT)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"{page.replace('/', '_')}.png"
        visit.page.screenshot(path=str(shot), full_page=True)
    finally:
        visit.close()
    _COUNTS[page] = {"formulas": seen["formulas"], "typeset": seen["typeset"]}
    (SHOTS / "formulas.json").write_text(json.dumps(_COUNTS, indent=1, sort_keys=True))

    expected = expected_formulas(page)
    if expected is not None:
        assert seen["formulas"] == expected, "formulas on the page vs in its source"
    assert seen["typeset"] == seen["formulas"], "formulas left untypeset"
    assert seen["in_error"] == 0, "MathJax could not typeset some formulas"
    raw = [t for t in _RAW_TEX if t in seen["text"]]
    assert not raw, f"raw TeX left in the text: {raw}"
    if page.startswith("api/"):  # a docstring role napoleon could not parse shows as code
        source = re.sub(r"<pre>.*?</pre>", "", _fetch(f"{server}/{page}.html"), flags=re.S)
        assert ":math:`" not in html.unescape(re.sub(r"<[^>]+>", "", source))
    unloaded = [src for src, complete, width in seen["images"] if not (complete and width > 0)]
    assert not unloaded, f"images not loaded: {unloaded}"
    assert not _broken_links(seen["links"], server), _broken_links(seen["links"], server)
    assert not visit.errors, visit.errors
    assert not visit.foreign, f"requests to other hosts: {visit.foreign}"


def test_eigendistortion_page_shows_formulas_and_figure(server, browser):
    visit = Visit(browser, f"{server}/eigendistortion.html")
    try:
        seen = visit.page.evaluate(_INSPECT)
        figure = visit.page.locator('img[src$="eigendistortion.png"]')
        assert figure.count() == 1 and figure.evaluate("i => i.naturalWidth") > 0
        assert figure.is_visible()
    finally:
        visit.close()
    assert seen["typeset"] >= 50 and seen["typeset"] == seen["formulas"]


# -- the standalone conformance report -----------------------------------------------------


def test_conformance_html_report_in_the_browser(tmp_path, browser):
    report = tmp_path / "report.html"
    run = subprocess.run(
        [sys.executable, "-m", "conformance", "--backend", "numpy", "--case", "00[04]*"]
        + ["--report", str(report), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    visit = Visit(browser, report.as_uri())
    try:
        tables = visit.page.evaluate(
            """() => Array.from(document.querySelectorAll('table')).map(t => ({
                 header: t.rows[0].cells.length,
                 rows: Array.from(t.rows).slice(1).map(r => Array.from(r.cells).map(
                   c => [c.className, c.textContent.trim(), c.querySelector('a') ?
                         c.querySelector('a').getAttribute('href') : null]))}))"""
        )
        notes = visit.page.evaluate(
            "() => Array.from(document.querySelectorAll('ol.notes li')).map(li => li.id)"
        )
        SHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SHOTS / "conformance_report.png"), full_page=True)
    finally:
        visit.close()
    assert len(tables) == 2  # seeds 000 and 004
    referenced = set()
    for table in tables:
        assert table["rows"], "an empty table"
        for row in table["rows"]:
            assert len(row) == table["header"], "a row with a missing cell"
            for cls, text, href in row[2:]:
                status = text.split()[0]
                assert status in ("PASS", "FAIL", "SKIP", "ERRATUM", "-"), text
                assert cls == (status if status != "-" else "NA")
                if status in ("FAIL", "SKIP", "ERRATUM"):
                    assert href is not None, f"a {status} cell without its footnote"
                if href is not None:
                    referenced.add(href.lstrip("#"))
    assert referenced, "no footnotes at all"
    assert referenced == set(notes), "footnote references and footnotes differ"
    assert not visit.errors and not visit.foreign


def test_landing_page_gives_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(pip install torch.*?)```", readme, flags=re.S).group(1)
    assert commands in (DOCS / "index.md").read_text()
