"""Sphinx configuration of the refimpl site.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the
``docs`` extra installs what it needs); open ``docs/_build/html/index.html``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the packages, from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "refimpl"
author = "refimpl developers"
copyright = "2026, refimpl developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "local_mathjax",  # MathJax served from the site itself (docs/_ext/local_mathjax.py)
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# Markdown: $...$ and $$...$$ formulas, anchors for headings (design.md#randomness).
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference: numpydoc docstrings through napoleon, members in source order, the
# signatures as written (no evaluation of default values).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # an "Attributes" section is a field list, not duplicate entries
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the hints are mostly Any; the docstrings say what is accepted
autodoc_preserve_defaults = True
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "special-members": "__call__",
}
# The front ends' libraries, where not installed, are stood in for (their pages then show
# the signatures and docstrings all the same).
autodoc_mock_imports = [m for m in ("torch", "jax") if importlib.util.find_spec(m) is None]

html_theme = "pydata_sphinx_theme"
html_title = "refimpl"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}  # no theme-mode lookup (and console error) on first visit
