"""CLI wiring for ``defectkit convert`` (argparse only; heavy imports inside the handler)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  defectkit convert data/bottle --split runs/split.json --to coco yolo voc -o runs/labels
  defectkit convert data/bottle --split runs/split.json --to yolo --link \\
      --names broken_large="broken glass" contamination="dirt stain" -o runs/labels --check
  # every category of a root (MVTec AD, MVTec AD 2 or VisA) as one dataset, classes category/defect_type
  defectkit convert data/mvtec --categories all --defects-to-train 5 --names names.yaml -o runs/labels_all
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert``. Long on purpose: one flat ``add_argument`` per flag, in --help order; split up, the
    command's interface would be read in pieces."""
    p = subparsers.add_parser(
        "convert",
        help="write COCO / YOLO / VOC labels from the masks of a split",
        description="Convert the masks of every image of a split manifest into COCO json (boxes, polygons, RLE), "
        "an Ultralytics YOLO dataset (images, labels, data.yaml) and Pascal VOC XML.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="dataset category folder (e.g. data/bottle), or the root with --categories")
    p.add_argument(
        "--split",
        default="",
        help="split manifest from 'defectkit split' (required without --categories; with it, a manifest "
        "from 'defectkit split ROOT --categories ...', or none to split every category here)",
    )
    p.add_argument(
        "--categories",
        default=None,
        metavar="all|A,B",
        help="the whole dataset as one: classes category/defect_type, stable image ids; without --split "
        "the split is made here and saved as LABELS/split.json",
    )
    p.add_argument(
        "--defects-to-train",
        type=int,
        default=0,
        metavar="K",
        help="with --categories and no --split: move K test images of each defect type to train (default 0)",
    )
    p.add_argument("--seed", type=int, default=0, help="with --categories and no --split: the split's seed")
    p.add_argument("-o", "--output", required=True, help="LABELS folder to write")
    p.add_argument(
        "--to",
        nargs="+",
        default=["coco", "yolo", "voc"],
        metavar="FMT",
        help="formats: coco yolo voc (default: all three)",
    )
    p.add_argument(
        "--segm",
        default="polygon",
        choices=["polygon", "rle"],
        help="COCO segmentation: polygon (RLE only for masks with holes; default) or rle",
    )
    p.add_argument(
        "--min-area",
        type=int,
        default=None,
        metavar="N",
        help="drop mask components smaller than N pixels (counted; default 10)",
    )
    p.add_argument("--per-image", action="store_true", help="one instance per image instead of per component")
    p.add_argument(
        "--single-class", action="store_true", help='one class "defect" instead of one per defect type'
    )
    p.add_argument(
        "--names",
        nargs="+",
        default=[],
        metavar='TYPE="NAME"|FILE',
        help='YOLO class names, e.g. broken_large="broken glass", or a JSON/YAML file mapping class -> '
        'phrase (default: underscores -> spaces; bottle/broken_large -> "bottle broken large")',
    )
    p.add_argument(
        "--yolo-task",
        default="segment",
        choices=["segment", "detect"],
        help="YOLO label rows: polygons (default; also trains detectors) or boxes",
    )
    p.add_argument(
        "--simplify",
        type=float,
        default=None,
        metavar="PX",
        help="polygon simplification tolerance in pixels (default 0.45; 0 = exact pixel outline)",
    )
    p.add_argument("--link", action="store_true", help="symlink YOLO images instead of copying them")
    p.add_argument(
        "--check",
        action="store_true",
        help="re-rasterise every polygon, print fidelity and write LABELS/check.json",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes converting masks and threads writing files (default 1)",
    )
    p.set_defaults(func=_convert)


def _names_file(value: str) -> bool:
    from pathlib import Path

    return Path(value).suffix.lower() in (".json", ".yaml", ".yml") or Path(value).is_file()


def _parse_names(values: list[str]) -> tuple[tuple[str, str], ...]:
    from defectkit.errors import InputError

    if len(values) == 1 and "=" not in values[0] and _names_file(values[0]):
        from defectkit.converters.multi import load_names_file

        return load_names_file(values[0])
    out = []
    for v in values:
        key, sep, name = v.partition("=")
        if not sep:
            raise InputError(f'--names: expected TYPE="natural name", got {v!r}')
        out.append((key.strip(), name.strip().strip('"').strip("'")))
    return tuple(out)


def _convert(args: argparse.Namespace) -> int:
    from defectkit.converters.convert import ConvertConfig, convert_dataset
    from defectkit.converters.instances import DEFAULT_MIN_AREA, DEFAULT_SIMPLIFY
    from defectkit.errors import InputError

    try:
        cfg = ConvertConfig(
            dataset=args.path,
            split=args.split,
            output=args.output,
            formats=tuple(args.to),
            segm=args.segm,
            min_area=DEFAULT_MIN_AREA if args.min_area is None else args.min_area,
            per_image=args.per_image,
            single_class=args.single_class,
            names=_parse_names(args.names),
            link=args.link,
            check=args.check,
            yolo_task=args.yolo_task,
            simplify=DEFAULT_SIMPLIFY if args.simplify is None else args.simplify,
            workers=args.workers,
            categories=tuple(c.strip() for c in args.categories.split(",") if c.strip())
            if args.categories
            else (),
            defects_to_train=args.defects_to_train,
            seed=args.seed,
        )
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"convert: {exc}") from exc
    report = convert_dataset(cfg)
    print(report.summary())
    return 0
