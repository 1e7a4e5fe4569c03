"""Progress bars for long loops (tqdm), or a silent stand-in when they are off.

``refimpl`` may not import tqdm itself (docs/design.md, Layers), so it asks here::

    bar = progress_bar(total=n_chunks, enabled=True, desc="perturbed")
    bar.update(1); ...; bar.close()
"""

from __future__ import annotations

from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, *, enabled: bool, desc: str = "", unit: str = "it") -> Any:
    """A tqdm bar over ``total`` steps when ``enabled``, else an object that does nothing."""
    if not enabled:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)
