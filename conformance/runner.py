"""Run cases on targets and print the case x target table.

Statuses: PASS, FAIL (an assertion or an unexpected exception), SKIP (target unavailable,
or the case cannot run there), ERRATUM (an erratum case whose checks pass: the target
follows the documented library where the document is wrong). ERRATUM counts as passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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


def format_list(cases: list[Case]) -> str:
    lines = []
    for c in cases:
        lines.append(f"{c.id}\n    source:    {c.source}\n    component: {c.component}")
        lines.append(f"    check:     {c.check.describe()}")
        if c.description:
            lines.append(f"    what:      {c.description}")
        if c.originals:
            lines.append(f"    also on:   {', '.join(c.originals)}")
    lines.append(f"{len(cases)} cases")
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
        "array_api_strict, cupy, rai_toolbox, captum, plenoptic (default: all)",
    )
    parser.add_argument("--case", default=None, help="glob(s) on case ids, comma-separated")
    parser.add_argument("--json", default=None, metavar="PATH", help="write results as JSON")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    selected = filter_cases(all_cases() if cases is None else cases, args.case)
    if args.list:
        print(format_list(selected))
        return 0

    targets = default_targets()
    if args.backend:
        wanted = [w.strip() for arg in args.backend for w in arg.split(",") if w.strip()]
        aliases = {"strict": "array_api_strict", "torch:cpu": "torch", "np": "numpy"}
        wanted = [aliases.get(w, w) for w in wanted]
        known = {lab for lab, _ in targets}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            parser.error(f"unknown backend {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        targets = [(lab, t) for lab, t in targets if lab in wanted]

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
