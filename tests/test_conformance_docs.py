"""docs/conformance.md is what its documented command produces (issue 12): the test reruns
the command of docs/conformance_suite.md and compares everything but the versions section."""

from __future__ import annotations

import difflib
import pathlib
import re
import shlex

from conformance.report import strip_versions
from conformance.runner import main

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
COMMITTED = DOCS / "conformance.md"


def _documented_argv() -> list[str]:
    text = (DOCS / "conformance_suite.md").read_text()
    m = re.search(r"^python -m conformance (.*--report docs/conformance\.md)$", text, re.M)
    assert m, "docs/conformance_suite.md lacks the command that regenerates the report"
    return shlex.split(m.group(1))


def test_committed_report_matches_its_command(tmp_path, capsys):
    argv = _documented_argv()
    fresh = tmp_path / "conformance.md"
    i = argv.index("--report") + 1
    main([*argv[:i], str(fresh), *argv[i + 1 :]])
    capsys.readouterr()
    got = strip_versions(fresh.read_text().replace(str(fresh), argv[i]))
    want = strip_versions(COMMITTED.read_text())
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), "committed", "regenerated"
            )
        )
        raise AssertionError(
            "docs/conformance.md is stale; regenerate it with\n    python -m conformance "
            f"{shlex.join(argv)}\n{diff[:4000]}"
        )
