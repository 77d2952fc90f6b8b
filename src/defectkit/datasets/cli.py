"""CLI wiring for ``defectkit synth``, ``describe`` and ``split``."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_synth(subparsers)
    _register_describe(subparsers)
    _register_split(subparsers)


def _register_synth(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write synthetic categories (bottle-like object, tile texture) in the MVTec AD, AD 2 or VisA layout",
        description="Write synthetic MVTec-format data: OUT/<category> (or several categories, or the "
        "MVTec AD 2 / VisA layout, under OUT).",
    )
    p.add_argument("out", help="output folder; the category folder is created inside it")
    p.add_argument("--category", default="bottle")
    p.add_argument(
        "--categories",
        default=None,
        metavar="A,B",
        help="several categories, comma-separated, e.g. bottle,tile ('tile' is a texture with crack and "
        "glue_strip defects, any other name but all/report the bottle-like object); default: the one "
        "--category",
    )
    p.add_argument(
        "--layout",
        default="mvtec",
        choices=["mvtec", "mvtec_ad2", "visa"],
        help="folder layout: MVTec AD (default), MVTec AD 2 or VisA",
    )
    p.add_argument("--n-train", type=int, default=60, help="train/good images (default 60)")
    p.add_argument("--n-test-good", type=int, default=20, help="test/good images (default 20)")
    p.add_argument(
        "--n-test-per-defect", type=int, default=20, help="test images per defect type (default 20)"
    )
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synth)


def _register_describe(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "describe",
        help="print the dataset card of an MVTec AD / MVTec AD 2 / VisA folder",
        description="Scan, validate and describe a category (or root) folder in the MVTec AD, MVTec AD 2 "
        "or VisA layout (found automatically; the card names it).",
    )
    p.add_argument("path", help="category folder (e.g. data/bottle), MVTec / MVTec AD 2 root or VisA root")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.add_argument(
        "--lenient", action="store_true", help="drop defect images without a mask (with a warning)"
    )
    p.set_defaults(func=_describe)


def _register_split(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "split",
        help="write the train/val/test split manifest",
        description="Write one deterministic train/val/test manifest for every model.",
    )
    p.add_argument("path", help="category folder")
    p.add_argument("-o", "--output", required=True, help="manifest path, e.g. runs/split.json")
    p.add_argument(
        "--defects-to-train",
        type=int,
        default=0,
        metavar="K",
        help="move K test images of each defect type to train (0 = unsupervised protocol; "
        "5 = the course-study protocol)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="fraction of the train side moved to val, per defect type (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--category", default=None, help="category to split when PATH is an MVTec root")
    p.add_argument(
        "--categories",
        default=None,
        metavar="all|A,B",
        help="one manifest over several categories of a root (classes category/defect_type; each "
        "category split on its own with the same settings)",
    )
    p.add_argument(
        "--lenient", action="store_true", help="drop defect images without a mask (with a warning)"
    )
    p.set_defaults(func=_split)


def _synth(args: argparse.Namespace) -> int:
    from defectkit.datasets.synth import SynthConfig, generate_synthetic
    from defectkit.runtime import make_config

    cfg = make_config(
        SynthConfig,
        "synth",
        category=args.category,
        n_train=args.n_train,
        n_test_good=args.n_test_good,
        n_test_per_defect=args.n_test_per_defect,
        size=args.size,
        seed=args.seed,
        categories=tuple(c.strip() for c in args.categories.split(",")) if args.categories else (),
        layout=args.layout,
    )
    root = generate_synthetic(args.out, cfg)
    print(root)
    return 0


def _describe(args: argparse.Namespace) -> int:
    from defectkit.datasets.describe import describe_dataset, format_card
    from defectkit.datasets.layouts import scan_dataset
    from defectkit.fileio import dumps_json

    card = describe_dataset(scan_dataset(args.path, lenient=args.lenient))
    sys.stdout.write(dumps_json(card) if args.json else format_card(card))
    return 0


def _split(args: argparse.Namespace) -> int:
    from defectkit.datasets.layouts import scan_dataset
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.split_all import make_split_all
    from defectkit.errors import InputError
    from defectkit.runtime import make_config

    cfg = make_config(
        SplitConfig,
        "split",
        defects_to_train=args.defects_to_train,
        val_fraction=args.val_fraction,
        seed=args.seed,
        category=args.category,
    )
    index = scan_dataset(args.path, lenient=args.lenient)
    if args.categories and args.category:
        raise InputError("split: give --category or --categories, not both")
    manifest = make_split_all(index, cfg, args.categories) if args.categories else make_split(index, cfg)
    manifest.save(args.output)
    counts = manifest.counts()
    summary = "  ".join(f"{s}={sum(c.values())}" for s, c in counts.items())
    print(f"wrote {args.output}: {summary}")
    return 0
