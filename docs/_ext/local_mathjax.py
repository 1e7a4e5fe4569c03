"""Serve MathJax from the built site, so that formulas render offline.

The ``docs`` extra installs ``sphinx-mathjax-offline``, a PyPI package that ships MathJax
3.2 (Apache-2.0) with its fonts. This extension copies that MathJax into
``_static/mathjax`` of the site and points Sphinx's ``mathjax_path`` at it. Where the
package is missing, Sphinx's default (MathJax from its CDN) stays, and the build says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from sphinx.util import logging
from sphinx.util.fileutil import copy_asset

logger = logging.getLogger(__name__)

LOCAL_PATH = "mathjax/tex-chtml.js"


def _mathjax_dir() -> Path | None:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "static" / "mathjax"
    return path if (path / "tex-chtml.js").is_file() else None


def _configure(app: Any, config: Any) -> None:
    source = _mathjax_dir()
    app.env_mathjax_source = source  # read again when the build has finished
    if source is None:
        logger.info("local_mathjax: sphinx-mathjax-offline not installed; MathJax from its CDN")
        return
    config.mathjax_path = LOCAL_PATH


def _copy(app: Any, exc: Exception | None) -> None:
    source = getattr(app, "env_mathjax_source", None)
    if exc is None and source is not None and app.builder.format == "html":
        copy_asset(str(source), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _configure)
    app.connect("build-finished", _copy)
    return {"version": "1", "parallel_read_safe": True}
