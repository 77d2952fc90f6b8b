"""CLI wiring for `defectkit.annotate` (argparse only; heavy imports inside handlers)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this subpackage's subcommands. (Not implemented yet.)"""
