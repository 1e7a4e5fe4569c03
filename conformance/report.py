"""The ``--report`` output: one table per seed (rows = documented examples, columns =
targets), every non-PASS cell footnoted with its reason, and the versions of the libraries
involved.

The output depends only on the cases, the targets and the results' statuses and reasons
(no timings, no dates), so a report of seeded columns is reproducible; the versions are the
last section (``## Versions``), which :func:`strip_versions` removes for comparisons.
"""

from __future__ import annotations

import html as _html
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

VERSIONS_HEADING = "## Versions"

#: distributions a column involves, by target label or backend name
_PACKAGES = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "array_api_strict": ("array-api-strict",),
    "cupy": ("cupy-cuda12x", "cupy"),
    "jax": ("jax", "jaxlib"),
    "rai_toolbox": ("rai-toolbox", "torch"),
    "captum": ("captum", "torch"),
    "plenoptic": ("plenoptic", "torch"),
    "optax": ("optax", "jax"),
}


def versions(targets: Sequence[Any]) -> dict[str, str]:
    """Python and the installed versions of the distributions the targets involve (refimpl,
    numpy and scipy always; a port lists its own in ``target.packages``)."""
    names = ["refimpl", "array-api-compat", "numpy", "scipy"]
    for t in targets:
        key = t.name if t.kind == "refimpl" else t.label
        for n in (*_PACKAGES.get(key, ()), *getattr(t, "packages", ())):
            if n not in names:
                names.append(n)
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def strip_versions(text: str) -> str:
    """The report without its versions section (what differs between machines)."""
    i = text.find(VERSIONS_HEADING)
    if i < 0:
        i = text.find('<h2 id="versions">')
    return text if i < 0 else text[:i]


def _seed_title(cases: Sequence[Any], seed: str) -> str:
    """The first line of the docstring of the module that registered the seed's cases
    (``Seed 000: ...``), else ``000: Cases 000.*``."""
    for c in cases:
        mod = sys.modules.get(getattr(c.run, "__module__", ""), None)
        doc = (getattr(mod, "__doc__", None) or "").strip()
        if doc and mod.__name__.rsplit(".", 1)[-1] == f"seed{seed}":
            return doc.splitlines()[0].rstrip(".")
    return f"{seed}: Cases {seed}.*"


def _model(cases: Sequence[Any], targets: Sequence[Any], results: Sequence[Any]) -> dict:
    """Seeds -> rows of cells with footnote numbers (shared by identical reasons)."""
    by_cell = {(r.case, r.target): r for r in results}
    notes: dict[tuple[str, str], int] = {}
    seeds: dict[str, list] = {}
    for c in cases:
        seed = c.id.split(".", 1)[0]
        row = []
        for t in targets:
            r = by_cell.get((c.id, t.label))
            if r is None:
                row.append(("-", None))
                continue
            reason = c.check.explanation if r.status == "ERRATUM" else r.detail
            if r.status == "PASS":
                row.append(("PASS", None))
                continue
            key = (r.status, reason or "(no reason given)")
            notes.setdefault(key, len(notes) + 1)
            row.append((r.status, notes[key]))
        seeds.setdefault(seed, []).append((c, row))
    return {"seeds": seeds, "notes": notes}


def _applicable(labels: list[str], rows: list) -> tuple[list[str], list]:
    """Only the columns that some case of the seed applies to (a seed's table leaves out,
    say, captum on the rai_toolbox examples)."""
    keep = [j for j in range(len(labels)) if any(row[j][0] != "-" for _, row in rows)]
    return [labels[j] for j in keep], [(c, [row[j] for j in keep]) for c, row in rows]


#: why cells were skipped (``Result.skip``), as the summaries say it
SKIP_REASONS = {
    "no_gpu": "need a GPU",
    "not_installed": "library not installed",
    "unsupported": "not supported by the target",
}


def counts(results: Sequence[Any]) -> dict[str, Any]:
    """The cells by status, and the skipped ones by reason: ``cells``, ``ran`` (PASS +
    ERRATUM + FAIL), ``PASS``, ``ERRATUM``, ``FAIL``, ``SKIP`` and ``skip_reasons`` (keys of
    :data:`SKIP_REASONS`; a SKIP without a recorded reason counts as ``unsupported``).
    cells = ran + SKIP, and SKIP is the sum of ``skip_reasons``."""
    n: dict[str, Any] = {s: 0 for s in ("PASS", "ERRATUM", "FAIL", "SKIP")}
    why = dict.fromkeys(SKIP_REASONS, 0)
    for r in results:
        n[r.status] += 1
        if r.status == "SKIP":
            kind = getattr(r, "skip", "")
            why[kind if kind in why else "unsupported"] += 1
    ran = n["PASS"] + n["ERRATUM"] + n["FAIL"]
    return {"cells": len(results), "ran": ran, **n, "skip_reasons": why}


def describe_counts(results: Sequence[Any]) -> str:
    """The closing line: ``293 cells: 144 ran (110 PASS, 34 ERRATUM, 0 FAIL), 149 skipped
    (101 need a GPU, 48 library not installed)``; the reasons with no cell are left out."""
    n = counts(results)
    why = ", ".join(f"{v} {SKIP_REASONS[k]}" for k, v in n["skip_reasons"].items() if v)
    return (
        f"{n['cells']} cell{'' if n['cells'] == 1 else 's'}: {n['ran']} ran ({n['PASS']} PASS, "
        f"{n['ERRATUM']} ERRATUM, {n['FAIL']} FAIL), {n['SKIP']} skipped"
        + (f" ({why})" if why else "")
    )


def markdown(
    cases: Sequence[Any], targets: Sequence[Any], results: Sequence[Any], command: str = ""
) -> str:
    """The report as Markdown (GitHub footnotes for the reasons)."""
    m = _model(cases, targets, results)
    labels = [t.label for t in targets]
    out = ["# Conformance report", ""]
    if command:
        out += [
            f"Generated by `{command}` (docs/conformance_suite.md explains the suite).",
            "",
        ]
    out += [
        f"{len(cases)} documented examples x {len(targets)} targets ({', '.join(labels)}). "
        f"{describe_counts(results)}. PASS: the target reproduces the documented example; "
        "ERRATUM: the document and the documented library disagree and the target follows "
        "the library (not a failure); FAIL: it disagrees; SKIP: it cannot run it here (no "
        "GPU, a library not installed, or the target does not support the case); -: the case "
        "does not apply to the column. Every non-PASS cell links to its reason.",
        "",
    ]
    for seed, all_rows in m["seeds"].items():
        cols, rows = _applicable(labels, all_rows)
        out += [f"## {_seed_title([c for c, _ in rows], seed)}", ""]
        out.append("| case | documented example | " + " | ".join(cols) + " |")
        out.append("|---|---|" + "---|" * len(cols))
        for c, row in rows:
            cells = [s if n is None else f"{s} [^{n}]" for s, n in row]
            what = _cell(c.description or c.component)
            out.append(f"| `{c.id}` | {what} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Reasons", ""]
    for (status, reason), n in m["notes"].items():
        out.append(f"[^{n}]: {status}: {' '.join(reason.split())}")
    out += ["", VERSIONS_HEADING, ""]
    out += [f"- {k} {v}" for k, v in versions(targets).items()]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #eee; } td.PASS { background: #e4f6e4; } td.ERRATUM { background: #fff4d6; }
td.FAIL { background: #fbd9d9; } td.SKIP { background: #eeeeee; color: #555; }
code { font-size: 0.9em; } ol.notes li { margin-bottom: 0.3em; }
"""


def html(
    cases: Sequence[Any], targets: Sequence[Any], results: Sequence[Any], command: str = ""
) -> str:
    """The same report as a standalone HTML page (inline CSS, no JavaScript)."""
    e = _html.escape
    m = _model(cases, targets, results)
    labels = [t.label for t in targets]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Conformance report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Conformance report</h1>",
        f"<p>Generated by <code>{e(command)}</code>.</p>" if command else "",
        f"<p>{len(cases)} documented examples x {len(targets)} targets "
        f"({e(', '.join(labels))}). {e(describe_counts(results))}. ERRATUM: the document and "
        "the documented library disagree and the target follows the library (not a "
        "failure); SKIP: no GPU, a library not installed, or the target does not support "
        "the case; -: the case does not apply to the column.</p>",
    ]
    for seed, all_rows in m["seeds"].items():
        cols, rows = _applicable(labels, all_rows)
        out.append(f"<h2>{e(_seed_title([c for c, _ in rows], seed))}</h2>")
        out.append("<table><tr><th>case</th><th>documented example</th>")
        out.append("".join(f"<th>{e(lab)}</th>" for lab in cols) + "</tr>")
        for c, row in rows:
            tds = []
            for s, n in row:
                note = "" if n is None else f' <a href="#note-{n}"><sup>{n}</sup></a>'
                tds.append(f'<td class="{s if s != "-" else "NA"}">{s}{note}</td>')
            what = e(" ".join((c.description or c.component).split()))
            out.append(f"<tr><td><code>{e(c.id)}</code></td><td>{what}</td>{''.join(tds)}</tr>")
        out.append("</table>")
    out.append('<h2 id="reasons">Reasons</h2><ol class="notes">')
    for (status, reason), n in m["notes"].items():
        out.append(f'<li id="note-{n}"><b>{status}</b>: {e(" ".join(reason.split()))}</li>')
    out.append("</ol>")
    out.append('<h2 id="versions">Versions</h2><ul>')
    out += [f"<li>{e(k)} {e(v)}</li>" for k, v in versions(targets).items()]
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"
