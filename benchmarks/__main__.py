import argparse
import sys

import benchmarks
from benchmarks.harness import Harness, busy_processes, machine_info


def _count(minimum: int):
    """An argparse type: an int >= ``minimum`` (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=benchmarks.__doc__)
    parser.add_argument("name", nargs="*", help="benchmark(s) to run (default: list them)")
    parser.add_argument("--repeats", type=_count(1), default=5, help="timed samples (>= 1)")
    parser.add_argument("--warmup", type=_count(0), default=2, help="untimed calls (>= 0)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--load",
        type=_count(0),
        default=0,
        help="start N busy processes for the duration of the run (contention), stopped at the end",
    )
    args = parser.parse_args(argv)
    if not args.name:
        print("benchmarks: " + ", ".join(benchmarks.names()))
        return 0
    mods = []
    for name in args.name:
        try:
            mods.append(benchmarks.load(name))
        except ValueError as exc:
            parser.error(str(exc))
    print(machine_info())
    if args.load:
        print(f"contention: {args.load} busy process(es) run for the whole benchmark")
    with busy_processes(args.load):
        for name, mod in zip(args.name, mods):
            h = Harness(repeats=args.repeats, warmup=args.warmup, quick=args.quick, load=args.load)
            print(f"\n== {name} ==")
            mod.run(h)
            print(h.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
