"""Lazy re-exports for package ``__init__`` modules (PEP 562), so importing a package such as
``defectkit.finetune.sam`` loads no heavy library (torch, segment_anything, ultralytics) until a
name is actually used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], fallback: str | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package that exports ``name -> submodule`` (a submodule
    name relative to ``package``): the submodule is imported on first access of the name. Other
    public names are looked up in the ``fallback`` submodule, when given (a module that became
    this package keeps serving its old names)."""

    def __getattr__(name: str) -> Any:
        sub = exports.get(name)
        if sub is None and fallback is not None and not name.startswith("__"):
            sub = fallback
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{sub}")
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
