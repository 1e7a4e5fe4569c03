"""The documented libraries' own test suites, run against this project's front ends with only
the imports redirected (opt-in: they download the released sources and take minutes).

Run them with ``REFIMPL_UPSTREAM=1 python -m pytest tests/upstream``; each library also has a
script, ``python -m tests.upstream.<library>``, that prints its counts. The sources are the
released sdists from PyPI (or the repository at the released tag), cached under
``$REFIMPL_UPSTREAM_CACHE`` (default ``~/.cache/refimpl-upstream``). Tests that pin a
behaviour this project changes on purpose are listed, with the reason, in
docs/differences.md, and each script's ``EXPECTED_FAILURES``.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("REFIMPL_UPSTREAM"):
        return
    skip = pytest.mark.skip(reason="the upstream suites are opt-in: REFIMPL_UPSTREAM=1")
    for item in items:
        if "tests/upstream" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
