"""CLI wiring for ``defectkit demo`` and ``defectkit run``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run the whole chain on built-in synthetic data (CPU, minutes)",
        description="Generate a bottle-like dataset and run the whole chain on it: describe, split, convert, "
        "YOLO-World, SAM tiny, ResNet18, AutoEncoder, predictions, evaluation report. Re-running into the "
        "same folder skips the stages that are up to date.")
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--fast", action="store_true", help="smaller data and fewer epochs (the CI smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    p = subparsers.add_parser(
        "run", help="run the whole chain on a real dataset from one YAML file",
        description="Run the chain described by PIPELINE.yaml (see configs/bottle_gpu.yaml); each stage writes "
        "into its own folder with its resolved config and is skipped when up to date. Every stage's device and "
        "weights are checked before the first stage runs; --set changes any setting of the file. With `categories:` "
        "(all, or a list) `dataset:` is an MVTec root: each category runs into output/<category>/, a category "
        "table goes to output/report/, and the exit code is 1 when any category failed.")
    p.add_argument("pipeline", help="pipeline YAML file")
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="re-run this stage and every later one")
    p.add_argument("--only", metavar="STAGE", help="run just this stage")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting of the file, typed and checked like it (repeatable), e.g. "
                   "--set sam.epochs=1 --set classifier.device=cpu --set device=cpu; default: none")
    p.set_defaults(func=_run)


def _summary(cfg, results) -> None:
    from defectkit.pipeline.run import read_report_table

    print("stages: " + ", ".join(f"{r.name} {r.status}" + (f" ({r.seconds:.0f} s)" if r.status == "ran" else "")
                                 for r in results if r.status != "not selected"))
    if (cfg.report_dir / "report.json").is_file():
        sys.stdout.write(read_report_table(cfg))
        print(f"report: {cfg.report_dir / 'report.html'}")


def _demo(args: argparse.Namespace) -> int:
    from defectkit.pipeline.demo import DemoConfig, run_demo

    cfg, results = run_demo(DemoConfig(output=args.output, fast=args.fast, seed=args.seed))
    _summary(cfg, results)
    return 0


def _run(args: argparse.Namespace) -> int:
    from defectkit.pipeline.run import load_pipeline_yaml, run_pipeline

    cfg = load_pipeline_yaml(args.pipeline, args.overrides)
    if cfg.categories is not None:
        return _run_categories(cfg, args)
    _summary(cfg, run_pipeline(cfg, from_stage=args.from_stage, only=args.only))
    return 0


def _run_categories(cfg, args: argparse.Namespace) -> int:
    """Every category's chain, then the cross-category table; exit code 1 when a category failed."""
    from defectkit.eval.summary import format_summary
    from defectkit.pipeline.multi import run_categories, summary_dir

    runs, table = run_categories(cfg, from_stage=args.from_stage, only=args.only)
    for r in runs:
        if r.status == "failed":
            print(f"{r.category}: FAILED at stage {r.stage or '-'}: {r.error}")
        else:
            ran = [s.name for s in r.stages if s.status == "ran"]
            skipped = sum(s.status == "skipped" for s in r.stages)
            print(f"{r.category}: ran {', '.join(ran) or 'nothing'}; {skipped} skipped (up to date)")
    sys.stdout.write(format_summary(table))
    print(f"report: {summary_dir(cfg) / 'report.html'}")
    failed = [r.category for r in runs if r.status == "failed"]
    if failed:
        print(f"defectkit: {len(failed)} of {len(runs)} categories failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
