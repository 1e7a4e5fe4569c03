"""Run cases on targets and print the case x target table.

Statuses: PASS, FAIL (an assertion or an unexpected exception), SKIP (target unavailable,
or the case cannot run there), ERRATUM (an erratum case whose checks pass: the target
follows the documented library where the document is wrong). ERRATUM counts as passed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys
import time
import traceback
from dataclasses import dataclass

from conformance.registry import Case, Context, SkipCase, all_cases, filter_cases
from conformance.targets import (
    ENTRY_POINT_GROUP,
    ORIGINALS,
    PluginError,
    Target,
    builtin_targets,
    load_entry_points,
    original_targets,
    refimpl_targets,
    registered_targets,
)

#: the version of the JSON output's layout (``"schema"``; conformance/schema.json)
SCHEMA = "refimpl.conformance/1"
#: columns that run only when named (``--backend jax``, ``--target jax`` or ``refimpl``):
#: XLA compiles every operation once per new shape, so the eager loops of seed 004 take
#: many minutes on jax (seeds 000-003: 35 cases in 3.5 min on a loaded 2-core machine)
OPT_IN = {"jax"}


@dataclass
class Result:
    case: str
    target: str
    status: str
    detail: str = ""
    seconds: float = 0.0


def default_targets() -> list[tuple[str, Target]]:
    """(label, target) for every column: refimpl on every backend, every documented library,
    then the targets registered by plugins."""
    return [(t.label, t) for t in builtin_targets() + registered_targets()]


def run_one(case: Case, target: Target) -> Result:
    label = target.label
    reason = target.unavailable()
    if reason is not None:
        return Result(case.id, label, "SKIP", reason)
    t0 = time.perf_counter()
    try:
        target.prepare()
        case.run(Context(case, target))
    except SkipCase as exc:
        return Result(case.id, label, "SKIP", str(exc), time.perf_counter() - t0)
    except AssertionError as exc:
        return Result(
            case.id, label, "FAIL", str(exc) or "assertion failed", time.perf_counter() - t0
        )
    except Exception as exc:  # a crash is a failure, reported with its origin
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{tb.filename.rsplit('/', 1)[-1]}:{tb.lineno}"
        return Result(
            case.id,
            label,
            "FAIL",
            f"{type(exc).__name__}: {exc} ({where})",
            time.perf_counter() - t0,
        )
    status = "ERRATUM" if case.check.kind == "erratum" else "PASS"
    return Result(case.id, label, status, "", time.perf_counter() - t0)


def run_cases(cases: list[Case], targets: list[tuple[str, Target]]) -> list[Result]:
    results = []
    for c in cases:
        for label, t in targets:
            if c.applies_to(t):
                r = run_one(c, t)
                r.target = label
                results.append(r)
    return results


def summary(results: list[Result]) -> tuple[int, int, int]:
    passed = sum(r.status in ("PASS", "ERRATUM") for r in results)
    failed = sum(r.status == "FAIL" for r in results)
    skipped = sum(r.status == "SKIP" for r in results)
    return passed, failed, skipped


def format_table(cases: list[Case], labels: list[str], results: list[Result]) -> str:
    cell = {(r.case, r.target): r.status for r in results}
    used = [lab for lab in labels if any(r.target == lab for r in results)]
    width = max([len("case")] + [len(c.id) for c in cases])
    cols = [max(len(lab), 7) for lab in used]
    lines = ["  ".join(["case".ljust(width)] + [lab.ljust(w) for lab, w in zip(used, cols)])]
    lines.append("  ".join(["-" * width] + ["-" * w for w in cols]))
    for c in cases:
        row = [c.id.ljust(width)]
        for lab, w in zip(used, cols):
            row.append(cell.get((c.id, lab), "-").ljust(w))
        lines.append("  ".join(row).rstrip())
    return "\n".join(lines)


def format_details(results: list[Result]) -> str:
    out = []
    for r in results:
        if r.status == "FAIL":
            out.append(f"FAIL {r.case} [{r.target}]: {r.detail}")
    skipped = {}
    for r in results:
        if r.status == "SKIP":
            skipped.setdefault(r.detail, []).append(f"{r.case} [{r.target}]")
    for reason, where in skipped.items():
        out.append(f"SKIP x{len(where)}: {reason}")
    return "\n".join(out)


def format_list(cases: list[Case], targets: list[tuple[str, Target]] | None = None) -> str:
    lines = []
    for c in cases:
        lines.append(f"{c.id}\n    source:    {c.source}\n    component: {c.component}")
        lines.append(f"    check:     {c.check.describe()}")
        if c.description:
            lines.append(f"    what:      {c.description}")
        if c.originals:
            lines.append(f"    also on:   {', '.join(c.originals)}")
        if targets is not None:
            runs = [lab for lab, t in targets if c.applies_to(t)]
            lines.append(f"    runs on:   {', '.join(runs)}")
    lines.append(f"{len(cases)} case{'' if len(cases) == 1 else 's'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, cases: list[Case] | None = None) -> int:
    """The command line; returns the exit code: 0 when no cell FAILs (PASS, ERRATUM and SKIP
    only), 1 when some cell FAILs; usage errors exit with 2 (argparse) before anything runs."""
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Check every documented example on every available implementation.",
        epilog="Exit codes: 0 no FAIL (PASS, ERRATUM, SKIP only), 1 some FAIL, 2 usage error. "
        "The last line printed is 'P passed, F failed, S skipped'.",
    )
    parser.add_argument(
        "--backend",
        action="append",
        default=None,
        help="refimpl column(s), comma-separated or repeated: numpy, torch, torch:cuda, "
        f"array_api_strict, cupy, jax (also {', '.join(ORIGINALS)})",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=None,
        help="column(s) by label, comma-separated or repeated: any registered target, "
        "'refimpl' (every backend column), 'original' (every documented library); with "
        "--backend the union (default: every column but jax, which runs when named)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it registers targets and cases); modules named by entry "
        f"points in the group {ENTRY_POINT_GROUP!r} are imported too",
    )
    parser.add_argument("--case", default=None, help="glob(s) on case ids, comma-separated")
    parser.add_argument("--json", default=None, metavar="PATH", help="write results as JSON")
    parser.add_argument(
        "--report",
        default=None,
        metavar="PATH",
        help="write a report: Markdown (PATH.md) or standalone HTML (PATH.html)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the cases (of the selected columns) and exit"
    )
    args = parser.parse_args(argv)

    # Every selection is checked before anything runs: selecting nothing is a usage error
    # (exit 2), so a typo in a CI script cannot pass as "0 passed, 0 failed".
    _load_plugins(parser, args.plugin)
    targets = _select_targets(parser, args.backend, args.target)
    every = all_cases() if cases is None else cases
    if args.case is not None and not [p for p in args.case.split(",") if p.strip()]:
        parser.error(f"--case {args.case!r} names no pattern; the cases are: {_ids(every)}")
    selected = filter_cases(every, args.case)
    if not selected:
        parser.error(f"--case {args.case!r} matches no case; the cases are: {_ids(every)}")
    selected = [c for c in selected if any(c.applies_to(t) for _, t in targets)]
    if not selected:
        parser.error(
            f"no case selected by --case {args.case!r} runs on the column(s) "
            f"{', '.join(lab for lab, _ in targets)} selected by --backend/--target"
        )
    if args.list:
        print(format_list(selected, targets))
        return 0
    for flag, path in (("--json", args.json), ("--report", args.report)):
        problem = path and _unwritable(path)
        if problem:
            parser.error(f"{flag} {path!r}: {problem}")
    if args.report and not args.report.endswith((".md", ".html")):
        parser.error(f"--report {args.report!r}: the name must end in .md or .html")

    t0 = time.perf_counter()
    results = run_cases(selected, targets)
    labels = [lab for lab, _ in targets]
    print(format_table(selected, labels, results))
    details = format_details(results)
    if details:
        print()
        print(details)
    passed, failed, skipped = summary(results)
    errata = sum(r.status == "ERRATUM" for r in results)
    print()
    print(
        f"{len(selected)} cases x {len(labels)} targets in {time.perf_counter() - t0:.1f} s; "
        f"{errata} of the passes are ERRATUM cells (document and documented library disagree)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(to_json(selected, targets, results), fh, indent=2)
    if args.report:
        from conformance import report

        used = [t for _, t in targets if any(r.target == t.label for r in results)]
        write = report.html if args.report.endswith(".html") else report.markdown
        command = "python -m conformance " + shlex.join(sys.argv[1:] if argv is None else argv)
        pathlib.Path(args.report).write_text(write(selected, used, results, command))
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def to_json(cases: list[Case], targets: list[tuple[str, Target]], results: list[Result]) -> dict:
    """The ``--json`` document (layout ``SCHEMA``, described by conformance/schema.json)."""
    from conformance.report import versions

    passed, failed, skipped = summary(results)
    return {
        "schema": SCHEMA,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "exit_code": 1 if failed else 0,
        "targets": [
            {"label": lab, "kind": t.kind, "unavailable": t.unavailable()} for lab, t in targets
        ],
        "versions": versions([t for _, t in targets]),
        "results": [r.__dict__ for r in results],
        "cases": [
            {
                "id": c.id,
                "source": c.source,
                "component": c.component,
                "check": c.check.describe(),
                "description": c.description,
            }
            for c in cases
        ],
    }


def _ids(cases: list[Case]) -> str:
    return ", ".join(c.id for c in cases) or "(none registered)"


def _load_plugins(parser: argparse.ArgumentParser, modules: list[str]) -> None:
    """Import the entry points of ``ENTRY_POINT_GROUP``, then the ``--plugin`` modules."""
    import importlib

    try:
        load_entry_points()
    except PluginError as exc:  # a broken installed plugin: a usage error naming it
        parser.error(str(exc))
    for name in modules:
        if not name.strip():
            parser.error("--plugin needs a module name, e.g. --plugin my_port.conformance")
        try:
            importlib.import_module(name)
        except Exception as exc:  # not importable, or its registration is refused
            parser.error(f"--plugin {name!r} cannot be imported: {type(exc).__name__}: {exc}")


def _select_targets(
    parser: argparse.ArgumentParser, backend: list[str] | None, target: list[str] | None = None
) -> list[tuple[str, Target]]:
    """The columns named by ``--backend`` and ``--target`` (all without either); usage errors
    for unknown or no names."""
    targets = default_targets()
    if backend is None and target is None:
        return [(lab, t) for lab, t in targets if lab not in OPT_IN]
    known = [lab for lab, _ in targets]
    groups = {
        "refimpl": [t.label for t in refimpl_targets()],
        "original": [t.label for t in original_targets()],
    }
    aliases = {"strict": "array_api_strict", "torch:cpu": "torch", "np": "numpy"}
    wanted: list[str] = []
    for flag, given, names in (("--backend", backend, {}), ("--target", target, groups)):
        if given is None:
            continue
        words = [w.strip() for arg in given for w in arg.split(",") if w.strip()]
        if not words:
            parser.error(
                f"{flag} {','.join(given)!r} selects no column; "
                f"choose from {', '.join(sorted(known))}"
            )
        for w in words:
            w = aliases.get(w, w)
            if w in names:
                wanted += names[w]
            elif w in known:
                wanted.append(w)
            else:
                what = "backend" if flag == "--backend" else "target"
                extra = ", refimpl, original" if flag == "--target" else ""
                parser.error(f"unknown {what} {w!r}; choose from {', '.join(sorted(known))}{extra}")
    return [(lab, t) for lab, t in targets if lab in wanted]


def _unwritable(path: str) -> str | None:
    """Why the results could not be written to ``path`` (None if they can)."""
    p = pathlib.Path(path)
    parent = p.parent
    if p.is_dir():
        return "is a directory; give a file name"
    if not parent.is_dir():
        return f"the directory {str(parent)!r} does not exist (create it first)"
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return "is not writable"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
