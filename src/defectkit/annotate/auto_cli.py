"""CLI wiring for ``defectkit annotate auto`` (argparse only; heavy imports inside the handler)."""

from __future__ import annotations

import argparse


def register_auto(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit annotate auto``. Long on purpose: one flat ``add_argument`` per flag, in --help
    order; split up, the command's interface would be read in pieces."""
    p = sub.add_parser(
        "auto",
        help="label unlabelled images: detector (or given) boxes -> SAM masks -> COCO / YOLO",
        description="Turn boxes (from a YOLO-World detector or a COCO file of human-drawn boxes) into SAM "
        "masks and write them as COCO (with scores) and YOLO segment labels, plus a review gallery. Boxes "
        "whose mask is empty or smaller than --min-area are dropped and counted.",
    )
    p.add_argument(
        "--images", required=True, metavar="DIR", help="folder of images to label (searched recursively)"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--detector",
        metavar="BEST.pt",
        help="trained YOLO-World weights (e.g. RUN/weights/best.pt); an ultralytics .pt is trusted code "
        "(loading it can run what it carries): only your own or trusted files",
    )
    src.add_argument(
        "--boxes",
        metavar="BOXES.json",
        help="COCO file of boxes: images[].file_name relative to --images, annotations[].bbox "
        "XYWH pixels, categories; an optional annotations[].score is kept",
    )
    p.add_argument(
        "--text-embeddings",
        metavar="FILE",
        help="optional with --detector: re-apply its classes' text features from this file (written by "
        "`defectkit embed-text`); a YOLO-World best.pt already carries its own",
    )
    p.add_argument("--sam", required=True, metavar="PATH",
                   help="SAM checkpoint (state dict): a path or a name such as sam_vit_b")
    p.add_argument(
        "--model-type", default="vit_b", help="SAM size: tiny, vit_b, vit_l or vit_h (default vit_b)"
    )
    p.add_argument(
        "--conf",
        type=float,
        default=0.25,
        help="boxes scoring under this are ignored (detector or --boxes scores; default 0.25)",
    )
    p.add_argument("--max-det", type=int, default=100, help="most detector boxes per image (default 100)")
    p.add_argument(
        "--box-margin",
        type=float,
        default=0.1,
        metavar="F",
        help="cut each mask to its box grown by F x the box size on every side (default 0.1)",
    )
    p.add_argument(
        "--min-area",
        type=int,
        default=10,
        metavar="PX",
        help="drop mask parts under this many pixels, and masks left empty (default 10)",
    )
    p.add_argument(
        "--to",
        nargs="+",
        choices=("coco", "yolo"),
        default=["coco", "yolo"],
        help="label formats to write (default: coco yolo)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--no-gallery", action="store_true", help="skip the review gallery")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.set_defaults(func=_auto)


def _auto(args: argparse.Namespace) -> int:
    from defectkit.annotate.auto import AutoConfig, run_auto
    from defectkit.runtime import make_config

    cfg = make_config(
        AutoConfig,
        "annotate auto",
        images=args.images,
        output=args.output,
        sam=args.sam,
        model_type=args.model_type,
        boxes=args.boxes,
        detector=args.detector,
        text_embeddings=args.text_embeddings,
        conf=args.conf,
        max_det=args.max_det,
        box_margin=args.box_margin,
        min_area=args.min_area,
        formats=tuple(args.to),
        device=args.device,
        gallery=not args.no_gallery,
    )
    summary = run_auto(cfg)
    print(
        f"wrote {args.output}: {summary['images']} images, {summary['instances']} instances; dropped "
        f"{summary['dropped_no_mask']} boxes with no mask and {summary['dropped_small']} under --min-area"
    )
    return 0
