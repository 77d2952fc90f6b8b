"""CLI wiring for ``defectkit convert`` (argparse only; heavy imports inside the handler)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  defectkit convert data/bottle --split runs/split.json --to coco yolo voc -o runs/labels
  defectkit convert data/bottle --split runs/split.json --to yolo --link \\
      --names broken_large="broken glass" contamination="dirt stain" -o runs/labels --check
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
    p.add_argument("path", help="dataset category folder (e.g. data/bottle)")
    p.add_argument("--split", required=True, help="split manifest from 'defectkit split'")
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
        metavar='TYPE="NAME"',
        help='YOLO class names, e.g. broken_large="broken glass" (default: underscores -> spaces)',
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


def _parse_names(values: list[str]) -> tuple[tuple[str, str], ...]:
    from defectkit.errors import InputError

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
        )
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"convert: {exc}") from exc
    report = convert_dataset(cfg)
    print(report.summary())
    return 0
