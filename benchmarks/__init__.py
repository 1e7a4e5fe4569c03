"""Speed and memory benchmarks, side by side with the documented libraries when installed.

``python -m benchmarks`` lists them; ``python -m benchmarks NAME [--repeats N] [--quick]``
runs one. Each benchmark is a module here defining ``run(h: Harness)``.
"""

import importlib
import pkgutil

_NOT_BENCHMARKS = {"harness", "__main__"}


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_BENCHMARKS)


def load(name: str):
    if name not in names():
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")
