import argparse
import sys

import benchmarks
from benchmarks.harness import Harness, machine_info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=benchmarks.__doc__)
    parser.add_argument("name", nargs="*", help="benchmark(s) to run (default: list them)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
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
    for name, mod in zip(args.name, mods):
        h = Harness(repeats=args.repeats, warmup=args.warmup, quick=args.quick)
        print(f"\n== {name} ==")
        mod.run(h)
        print(h.report())
    return 0


sys.exit(main())
