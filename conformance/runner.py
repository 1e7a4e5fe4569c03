"""Run cases on targets and print the case x target table.

Statuses: PASS, FAIL (an assertion or an unexpected exception), SKIP (target unavailable,
or the case cannot run there), ERRATUM (an erratum case whose checks pass: the target
follows the documented library where the document is wrong). ERRATUM is not a failure (exit
code 0), and the closing line counts it apart from PASS:
``293 cells: 144 ran (110 PASS, 34 ERRATUM, 0 FAIL), 149 skipped (101 need a GPU, 48 library
not installed)`` (:func:`conformance.report.describe_counts`). Progress goes to stderr
(:mod:`conformance.progress`).
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

from conformance.progress import Progress, reporter
from conformance.registry import (
    Case,
    Context,
    SkipCase,
    all_cases,
    filter_cases,
    load_builtin_cases,
)
from conformance.report import counts, describe_counts, versions
from conformance.targets import (
    ALIASES,
    ENTRY_POINT_GROUP,
    GROUPS,
    ORIGINALS,
    PluginError,
    Target,
    build_target,
    builtin_targets,
    import_plugin,
    load_entry_points,
    registered_names,
    registered_targets,
)

#: the version of the JSON output's layout (``"schema"``; conformance/schema.json)
SCHEMA = "refimpl.conformance/1"
#: columns that run only when named (``--backend jax``, ``--target jax`` or ``refimpl``):
#: XLA compiles every operation once per new shape, so the eager loops of seed 004 take
#: many minutes on jax (seeds 000-003: 35 cases in 3.5 min on a loaded 2-core machine);
#: the JAX front end ``refimpl.jax`` (``--target refimpl.jax``) compiles too
OPT_IN = {"jax", "refimpl.jax"}


@dataclass
class Result:
    case: str
    target: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    #: why a SKIP (a key of ``conformance.report.SKIP_REASONS``): ``no_gpu`` (a GPU column
    #: that is unavailable), ``not_installed`` (another unavailable column: its library is
    #: missing), ``unsupported`` (the column cannot run the case); empty for the others
    skip: str = ""


def default_targets() -> list[tuple[str, Target]]:
    """(label, target) for every column: refimpl on every backend, every documented library,
    then the targets registered by plugins."""
    return [(t.label, t) for t in builtin_targets() + registered_targets()]


def run_one(case: Case, target: Target) -> Result:
    label = target.label
    t0 = time.perf_counter()
    try:
        reason = target.unavailable()
        if reason is not None:
            kind = "no_gpu" if getattr(target, "needs_gpu", False) else "not_installed"
            return Result(case.id, label, "SKIP", reason, skip=kind)
        target.prepare()
        case.run(Context(case, target))
    except SkipCase as exc:
        return Result(
            case.id, label, "SKIP", str(exc), time.perf_counter() - t0, skip="unsupported"
        )
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


def run_cases(
    cases: list[Case], targets: list[tuple[str, Target]], progress: Progress | None = None
) -> list[Result]:
    """Every cell (case x target where the case applies), case by case, telling
    ``progress`` (:mod:`conformance.progress`; None: nothing) as the cells run."""
    progress = Progress() if progress is None else progress
    plan = [(c, [(lab, t) for lab, t in targets if c.applies_to(t)]) for c in cases]
    plan = [(c, cols) for c, cols in plan if cols]
    results = []
    progress.start(sum(len(cols) for _, cols in plan), len(plan), len(targets))
    try:
        for c, cols in plan:
            mine = []
            for label, t in cols:
                progress.cell(c.id, label)
                r = run_one(c, t)
                r.target = label
                mine.append(r)
                progress.cell_done(r)
            results += mine
            progress.case_done(c.id, mine)
    finally:
        progress.close()
    return results


def summary(results: list[Result]) -> tuple[int, int, int]:
    """(passed, failed, skipped), passed counting PASS and ERRATUM (the JSON's keys of
    those names); the closing line counts them apart (:func:`counts`)."""
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
        "The last line printed is 'C cells: R ran (P PASS, E ERRATUM, F FAIL), S skipped "
        "(G need a GPU, ...)'. Progress goes to stderr: a bar on a terminal, else a line "
        "per case.",
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
        "--backend the union (default: every column but jax and refimpl.jax, which run when "
        "named)",
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
    parser.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress on stderr (a bar on a terminal, else a line per case); the table "
        "and the closing line still go to stdout",
    )
    args = parser.parse_args(argv)

    # Every argument is checked before anything runs: selecting nothing is a usage error
    # (exit 2), so a typo in a CI script cannot pass as "0 passed, 0 failed"; the output
    # files are tried first; the built-in cases are loaded before the plugins, so that a
    # plugin case cannot take a built-in id.
    _check_outputs(parser, args.json, args.report, args.list)
    load_builtin_cases()
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

    t0 = time.perf_counter()
    results = run_cases(selected, targets, reporter(args.quiet))
    labels = [lab for lab, _ in targets]
    print(format_table(selected, labels, results))
    details = format_details(results)
    if details:
        print()
        print(details)
    failed = summary(results)[1]
    print()
    note = ""
    if any(r.status == "ERRATUM" for r in results):
        note = (
            "; ERRATUM: the document and the documented library disagree and the target "
            "follows the library (not a failure)"
        )
    print(
        f"{len(selected)} cases x {len(labels)} targets in {time.perf_counter() - t0:.1f} s{note}"
    )
    if args.json:
        sys.stdout.flush()  # the table first where the JSON goes to stdout (/dev/stdout)
        with open(args.json, "w") as fh:
            json.dump(to_json(selected, targets, results), fh, indent=2)
            fh.write("\n")  # the closing line stays a line of its own there
    if args.report:
        from conformance import report

        used = [t for _, t in targets if any(r.target == t.label for r in results)]
        write = report.html if args.report.endswith(".html") else report.markdown
        command = "python -m conformance " + shlex.join(sys.argv[1:] if argv is None else argv)
        pathlib.Path(args.report).write_text(write(selected, used, results, command))
    print(describe_counts(results))
    return 1 if failed else 0


def to_json(cases: list[Case], targets: list[tuple[str, Target]], results: list[Result]) -> dict:
    """The ``--json`` document (layout ``SCHEMA``, described by conformance/schema.json)."""
    passed, failed, skipped = summary(results)
    n = counts(results)
    return {
        "schema": SCHEMA,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "exit_code": 1 if failed else 0,
        "cells": n["cells"],
        "ran": n["ran"],
        "statuses": {s: n[s] for s in ("PASS", "ERRATUM", "FAIL", "SKIP")},
        "skip_reasons": n["skip_reasons"],
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
    """Import the entry points of ``ENTRY_POINT_GROUP``, then the ``--plugin`` modules; a
    plugin that fails in any way (an exception, ``SystemExit``, a refused registration) is a
    usage error naming it."""
    if any(not name.strip() for name in modules):
        parser.error("--plugin needs a module name, e.g. --plugin my_port.conformance")
    try:
        load_entry_points()
        for name in modules:
            import_plugin(name)
    except PluginError as exc:
        parser.error(str(exc))


def _select_targets(
    parser: argparse.ArgumentParser, backend: list[str] | None, target: list[str] | None = None
) -> list[tuple[str, Target]]:
    """The columns named by ``--backend`` and ``--target`` (all but ``OPT_IN`` without
    either); usage errors for unknown or no names. Only the selected registered targets are
    built, and a plugin target that cannot be built is a usage error naming its plugin."""
    builtin = builtin_targets()
    known = [t.label for t in builtin] + registered_names()
    if backend is None and target is None:
        wanted = [lab for lab in known if lab not in OPT_IN]
    else:
        wanted = _wanted(parser, known, builtin, backend, target)
    try:
        plugged = [build_target(name) for name in registered_names() if name in wanted]
    except PluginError as exc:
        parser.error(str(exc))
    return [(t.label, t) for t in builtin if t.label in wanted] + [(t.label, t) for t in plugged]


def _wanted(
    parser: argparse.ArgumentParser,
    known: list[str],
    builtin: list[Target],
    backend: list[str] | None,
    target: list[str] | None,
) -> list[str]:
    """The labels named by ``--backend`` and ``--target`` (groups and aliases resolved)."""
    groups = {g: [t.label for t in builtin if t.kind == g] for g in GROUPS}
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
            w = ALIASES.get(w, w)
            if w in names:
                wanted += names[w]
            elif w in known:
                wanted.append(w)
            else:
                what = "backend" if flag == "--backend" else "target"
                extra = ", refimpl, original" if flag == "--target" else ""
                parser.error(f"unknown {what} {w!r}; choose from {', '.join(sorted(known))}{extra}")
    return wanted


def _check_outputs(
    parser: argparse.ArgumentParser, json_path: str | None, report: str | None, listing: bool
) -> None:
    """Usage errors for the output files: with ``--list`` (which runs nothing), an empty
    name, a report name without .md/.html, both flags naming one file, or a file that cannot
    be written (:func:`_unwritable` tries the real write)."""
    given = [(f, p) for f, p in (("--json", json_path), ("--report", report)) if p is not None]
    if listing and given:
        flags = " and ".join(f for f, _ in given)
        parser.error(
            f"--list prints the cases and runs nothing, so {flags} would write no results; "
            f"drop --list or {flags}"
        )
    for flag, path in given:
        if not path:
            example = "results.json" if flag == "--json" else "report.md"
            parser.error(f"{flag} {path!r} names no file; give a path, e.g. {flag} {example}")
    if report is not None and not report.endswith((".md", ".html")):
        parser.error(f"--report {report!r}: the name must end in .md or .html")
    if json_path is not None and report is not None and _same_file(json_path, report):
        parser.error(
            f"--json {json_path!r} and --report {report!r} name the same file; the report "
            "would overwrite the JSON: give two names"
        )
    for flag, path in given:
        problem = _unwritable(path)
        if problem:
            parser.error(f"{flag} {path!r}: {problem}")


def _same_file(a: str, b: str) -> bool:
    """Whether the paths name one file (after symlinks, ``..`` and hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _unwritable(path: str) -> str | None:
    """Why the results could not be written to ``path`` (None if they can). Tries the real
    write: opens the file for appending (an existing file is left as it was, a new one is
    created, written and removed again) and writes to it, which also catches the files that
    open but refuse data (``/dev/full``, ``/proc``, ``/sys``) and root's writable-looking
    directories."""
    p = pathlib.Path(path)
    if p.is_dir():
        return "is a directory; give a file name"
    if not p.parent.is_dir():
        return f"the directory {str(p.parent)!r} does not exist (create it first)"
    existed = p.exists()
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, b"" if existed else b"{}")
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    finally:
        if not existed and p.exists():  # created here (through a dangling link, maybe)
            os.remove(os.path.realpath(p))
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
