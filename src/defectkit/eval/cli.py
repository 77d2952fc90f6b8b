"""CLI wiring for ``defectkit eval`` (argparse only; heavy imports inside the handler)."""

from __future__ import annotations

import argparse


def _name_path(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PRED_DIR, got {text!r}")
    return name, path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``defectkit eval``."""
    p = subparsers.add_parser(
        "eval",
        help="compare models' predictions in one report (JSON, Markdown, HTML)",
        description="Evaluate prediction folders on the test split of a split manifest (image threshold "
        "chosen on val) and write REPORT_DIR/report.json, report.md, report.html and per_image.csv.",
    )
    p.add_argument("--split", required=True, help="split manifest (split.json)")
    p.add_argument(
        "--labels", required=True, help="LABELS folder written by 'defectkit convert' (uses coco/test.json)"
    )
    p.add_argument(
        "--pred",
        action="append",
        default=[],
        type=_name_path,
        metavar="NAME=PRED_DIR",
        help="a prediction folder and the model's display name (repeatable)",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="run folders searched for prediction folders (prediction_meta.json)",
    )
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.add_argument(
        "--threshold",
        default="max-f1",
        metavar="RULE",
        help="image threshold rule, applied to val: max-f1 (default), balanced (max balanced accuracy: "
        "does not lean on val's good/defect ratio), good-recall=0.95, fixed=0.5",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for 95%% CIs (default 1000; 0 = none)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--worst", type=int, default=6, metavar="N", help="worst cases shown per model (default 6)"
    )
    p.add_argument(
        "--no-reference", action="store_true", help="leave out the course study's quoted reference numbers"
    )
    p.add_argument("--no-verify", action="store_true", help="do not re-hash the dataset files of the split")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from defectkit.eval import EvalConfig, evaluate, format_table
    from defectkit.runtime import make_config

    config = make_config(
        EvalConfig,
        "eval",
        split=args.split,
        labels=args.labels,
        output=args.output,
        predictions=tuple(args.pred),
        runs=tuple(args.runs),
        threshold=args.threshold,
        bootstrap=args.bootstrap,
        seed=args.seed,
        reference=not args.no_reference,
        worst_cases=args.worst,
        verify_split=not args.no_verify,
    )
    report = evaluate(config)
    print(format_table(report), end="")
    print(f"report: {args.output}/report.html")
    return 0
