"""Progress bars for long loops (tqdm), or a silent stand-in when they are off.

``refimpl`` may not import tqdm itself (docs/design.md, Layers), so it asks here::

    bar = progress_bar(total=n_chunks, enabled=None, desc="perturbed")
    try:
        for ...: bar.update(1)
    finally:
        bar.close()

``enabled``: True shows the bar from the start, False never, None only once the loop has run
``DELAY`` seconds (2): a short call never shows a bar and costs one clock reading per
``update``; tqdm is imported and its bar made only when it is shown. ``total=None``: an
unknown total (a count, a rate and the postfix, no percentage); ``complete()`` then makes
the count the total, so that a finished run reads 100%.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["DELAY", "progress_bar"]

#: seconds a loop with ``enabled=None`` runs before its bar appears
DELAY = 2.0


class _Silent:
    """The bar of ``enabled=False``: does nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str = "") -> None:
        pass

    def complete(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar:
    """A tqdm bar made on the first ``update`` at least ``delay`` seconds after this object
    (at once for ``delay <= 0``), showing the count, the elapsed time and the postfix since
    this object was made. ``n``: the count so far (shown or not)."""

    def __init__(self, total: int | None, desc: str, unit: str, delay: float) -> None:
        self.total, self.desc, self.unit, self.delay = total, desc, unit, delay
        self.n, self.postfix = 0, ""
        self._start = time.time()  # tqdm's clock
        self._tqdm: Any = None
        self._closed = False
        if delay <= 0:
            self._show()

    def _show(self) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, leave=False)
        if self.delay > 0:  # the work done before the bar appeared: its time and its rate
            bar.start_t = bar.last_print_t = self._start
            bar.update(self.n)
            bar.set_postfix_str(self.postfix)
        self._tqdm = bar

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif not self._closed and time.time() - self._start >= self.delay:
            self._show()

    def set_postfix_str(self, text: str = "") -> None:
        self.postfix = text
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text, refresh=False)

    def complete(self) -> None:
        """The count becomes the total: the finished bar reads 100%."""
        self.total = self.n
        if self._tqdm is not None:
            self._tqdm.total = self.n
            self._tqdm.refresh()

    def close(self) -> None:
        self._closed = True
        if self._tqdm is not None:
            self._tqdm.close()


def progress_bar(
    total: int | None,
    *,
    enabled: bool | None,
    desc: str = "",
    unit: str = "it",
    delay: float | None = None,
) -> Any:
    """A bar over ``total`` steps (None: unknown), with ``update(n)``,
    ``set_postfix_str(text)``, ``complete()``, ``close()`` and the count ``n``.

    ``enabled``: True shows it from the start, None once ``delay`` seconds (default
    :data:`DELAY`) have passed at an ``update``, False never (a stand-in that does nothing).
    """
    if enabled is False:
        return _Silent()
    wait = 0.0 if enabled else (DELAY if delay is None else delay)
    return _Bar(total, desc, unit, wait)
