"""Run cases on targets and print the case x target table.

Statuses: PASS, FAIL (an assertion or an unexpected exception), SKIP (target unavailable,
or the case cannot run there), ERRATUM (an erratum case whose checks pass: the target
follows the documented library where the document is wrong). ERRATUM counts as passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from conformance.registry import Case, Context, SkipCase, Target, all_cases, filter_cases

#: original libraries that can appear as columns: column name -> import name
ORIGINALS = {
    "rai_toolbox": "rai_toolbox",
    "captum": "captum",
    "plenoptic": "plenoptic",
    "optax": "optax",
}


@dataclass
class Result:
    case: str
    target: str
    status: str
    detail: str = ""
    seconds: float = 0.0


def _label(name: str, device: Any) -> str:
    return name if device is None else f"{name}:{device}"


def default_targets() -> list[tuple[str, Target]]:
    """(label, target) for every backend column, plus every original library column."""
    from backends._adapters import ADAPTERS

    out: list[tuple[str, Target]] = []
    for name, adapter in ADAPTERS.items():
        reason = adapter.unavailable_reason()
        if name == "array_api_strict":
            out.append((name, Target(name, "backend", "device1", reason)))
        elif name == "torch":
            out.append((name, Target(name, "backend", "cpu", reason)))
            cuda = reason
            if cuda is None:
                import torch

                if not torch.cuda.is_available():
                    cuda = "torch sees no CUDA device"
            out.append(("torch:cuda", Target(name, "backend", "cuda", cuda)))
        else:
            out.append((name, Target(name, "backend", None, reason)))
    for col, mod in ORIGINALS.items():
        missing = None
        if importlib.util.find_spec(mod) is None:
            missing = f"{mod} is not installed (pip install 'refimpl[bench]')"
        out.append((col, Target(col, "original", None, missing)))
    return out


def run_one(case: Case, target: Target) -> Result:
    label = _label(target.name, target.device)
    if target.unavailable is not None:
        return Result(case.id, label, "SKIP", target.unavailable)
    t0 = time.perf_counter()
    try:
        _strict_flags(target)
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


def _strict_flags(target: Target) -> None:
    if target.name == "array_api_strict":
        import array_api_strict

        array_api_strict.set_array_api_strict_flags(
            api_version="2024.12", boolean_indexing=False, data_dependent_shapes=False
        )


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
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Check every documented example on every available backend.",
    )
    parser.add_argument(
        "--backend",
        action="append",
        default=None,
        help="column(s) to run, comma-separated or repeated: numpy, torch, torch:cuda, "
        f"array_api_strict, cupy, {', '.join(ORIGINALS)} (default: all)",
    )
    parser.add_argument("--case", default=None, help="glob(s) on case ids, comma-separated")
    parser.add_argument("--json", default=None, metavar="PATH", help="write results as JSON")
    parser.add_argument(
        "--list", action="store_true", help="list the cases (of the selected columns) and exit"
    )
    args = parser.parse_args(argv)

    # Every selection is checked before anything runs: selecting nothing is a usage error
    # (exit 2), so a typo in a CI script cannot pass as "0 passed, 0 failed".
    targets = _select_targets(parser, args.backend)
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
            f"{', '.join(lab for lab, _ in targets)} selected by --backend"
        )
    if args.list:
        print(format_list(selected, targets))
        return 0
    if args.json:
        problem = _unwritable(args.json)
        if problem:
            parser.error(f"--json {args.json!r}: {problem}")

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
            json.dump(
                {
                    "passed": passed,
                    "failed": failed,
                    "skipped": skipped,
                    "results": [r.__dict__ for r in results],
                    "cases": [
                        {
                            "id": c.id,
                            "source": c.source,
                            "component": c.component,
                            "check": c.check.describe(),
                        }
                        for c in selected
                    ],
                },
                fh,
                indent=2,
            )
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def _ids(cases: list[Case]) -> str:
    return ", ".join(c.id for c in cases) or "(none registered)"


def _select_targets(parser: argparse.ArgumentParser, backend: list[str] | None):
    """The columns named by ``--backend`` (all without it); usage errors for unknown or no names."""
    targets = default_targets()
    if backend is None:
        return targets
    known = sorted(lab for lab, _ in targets)
    wanted = [w.strip() for arg in backend for w in arg.split(",") if w.strip()]
    if not wanted:
        parser.error(
            f"--backend {','.join(backend)!r} selects no column; choose from {', '.join(known)}"
        )
    aliases = {"strict": "array_api_strict", "torch:cpu": "torch", "np": "numpy"}
    wanted = [aliases.get(w, w) for w in wanted]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        parser.error(f"unknown backend {unknown[0]!r}; choose from {', '.join(known)}")
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
