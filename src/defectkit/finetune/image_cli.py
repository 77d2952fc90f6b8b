"""CLI wiring for one model family (argparse only; heavy imports inside handlers)."""

from __future__ import annotations

import argparse


def register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add `defectkit finetune <model>` parsers. (Not implemented yet.)"""


def register_predict(sub: argparse._SubParsersAction) -> None:
    """Add `defectkit predict <model>` parsers. (Not implemented yet.)"""
