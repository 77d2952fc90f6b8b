"""tqdm progress bars that stay quiet when stdout is not a terminal or logging is quiet."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_ENABLED: bool | None = None  # None: decide from isatty


def set_progress_enabled(enabled: bool | None) -> None:
    """Force progress bars on/off (True/False) or back to auto-detection (None). Used by the CLI."""
    global _ENABLED
    _ENABLED = enabled


def progress_enabled() -> bool:
    if _ENABLED is not None:
        return _ENABLED
    return sys.stdout.isatty() and logging.getLogger("defectkit").getEffectiveLevel() <= logging.INFO


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, **kwargs: Any) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when bars are enabled, else return it unchanged."""
    if not progress_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False, **kwargs)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def byte_bar(total: int | None, desc: str = "") -> Any:
    """A context-managed tqdm bar counting bytes (``bar.update(n)``) when bars are enabled, else a no-op."""
    if not progress_enabled():
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                leave=False)
