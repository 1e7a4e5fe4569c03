"""Argument checks shared by the method packages (each package keeps its own specific ones)."""

from __future__ import annotations

from typing import Any


def check_bool(value: Any, *, name: str) -> bool:
    """``value`` itself when it is True or False; TypeError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value
