"""Metrics (pycocotools, scikit-learn wrapped) and the comparison report.

``from defectkit.eval import EvalConfig, evaluate, format_table``; submodules are imported lazily
so that importing this package (e.g. by the CLI) stays cheap.
"""

from __future__ import annotations

__all__ = ["EvalConfig", "evaluate", "format_table"]


def __getattr__(name: str) -> object:
    if name in ("EvalConfig", "evaluate"):
        from defectkit.eval import engine as _mod

        return getattr(_mod, name)
    if name == "format_table":
        from defectkit.eval.report import format_table

        return format_table
    raise AttributeError(f"module 'defectkit.eval' has no attribute {name!r}")
