"""CLI wiring for ``defectkit demo`` and ``defectkit run``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole chain on built-in synthetic data (CPU, minutes)",
                              description="Run the whole chain on generated data: synth, describe, split, ...")
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--fast", action="store_true", help="smaller data and fewer epochs (CI smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from defectkit.pipeline.demo import DemoConfig, run_demo

    run_demo(DemoConfig(output=args.output, fast=args.fast, seed=args.seed))
    return 0
