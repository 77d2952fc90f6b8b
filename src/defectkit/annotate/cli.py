"""CLI wiring for ``defectkit annotate overlay|gallery|auto|prompts`` (argparse only; heavy
imports inside handlers)."""

from __future__ import annotations

import argparse


def _review_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--coco", required=True, metavar="GT.json", help="COCO ground truth (e.g. LABELS/coco/test.json)"
    )
    p.add_argument(
        "--pred", metavar="PRED", help="detections.json (COCO results) or the prediction folder holding it"
    )
    p.add_argument(
        "--images-root",
        metavar="DIR",
        help="folder the COCO file_name values are relative to (default: the file's info.dataset)",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.25,
        metavar="S",
        help="predictions below this score are not drawn nor counted (default 0.25)",
    )
    p.add_argument(
        "--iou-threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="image IoU from which GT and predictions count as a match (default 0.5)",
    )
    p.add_argument("--alpha", type=float, default=0.45, help="opacity of prediction fills (default 0.45)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``defectkit annotate`` and its subcommands. Long on purpose: one flat ``add_argument`` per flag,
    in --help order; split up, the command's interface would be read in pieces."""
    annotate = subparsers.add_parser(
        "annotate",
        help="overlays, review galleries, SAM prompts and model-assisted labelling",
        description="Review ground truth against predictions, and label new images with detector boxes + SAM.",
    )
    sub = annotate.add_subparsers(dest="annotate_command", metavar="SUBCOMMAND")
    annotate.set_defaults(func=lambda _args: annotate.print_help() or 2)

    p = sub.add_parser(
        "overlay",
        help="one PNG per image: GT outlines, prediction fills, legend",
        description="Write OUT/<name>.png per COCO image (GT outlines, predictions as filled "
        "regions with class and score), OUT/agreement.csv and OUT/overlay_config.json.",
    )
    _review_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=_overlay)

    p = sub.add_parser(
        "gallery",
        help="self-contained HTML review page sorted by disagreement",
        description="Write a self-contained HTML page of overlay thumbnails sorted by "
        "disagreement (misses, then lowest IoU first), filterable by defect type; full-size "
        "overlays go to <page stem>_overlays/ next to it.",
    )
    _review_args(p)
    p.add_argument("-o", "--output", required=True, metavar="PAGE.html", help="output page")
    p.add_argument(
        "--thumb-size", type=int, default=256, metavar="PX", help="longest thumbnail side (default 256)"
    )
    p.add_argument("--title", default="defectkit review gallery")
    p.set_defaults(func=_gallery)

    p = sub.add_parser(
        "prompts",
        help="SAM prompts (boxes + sampled points) derived from GT masks",
        description="Write the SAM prompts of every annotation: an XYXY box and sampled points.",
    )
    p.add_argument("--coco", required=True, metavar="GT.json", help="COCO ground truth")
    p.add_argument("-o", "--output", required=True, metavar="prompts.json")
    p.add_argument(
        "--points",
        type=int,
        default=1,
        metavar="N",
        help="foreground points per instance; the first is the most interior pixel (default 1)",
    )
    p.add_argument(
        "--negative-points",
        type=int,
        default=0,
        metavar="N",
        help="background points per instance, inside the box and outside the mask (default 0)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prompts)

    from defectkit.annotate.auto_cli import register_auto

    register_auto(sub)


def _overlay_config(args: argparse.Namespace, output: str):
    from defectkit.annotate.review import OverlayConfig
    from defectkit.runtime import make_config

    return make_config(
        OverlayConfig,
        f"annotate {args.annotate_command}",
        coco=args.coco,
        output=output,
        pred=args.pred,
        images_root=args.images_root,
        score_threshold=args.score_threshold,
        iou_threshold=args.iou_threshold,
        alpha=args.alpha,
    )


def _overlay(args: argparse.Namespace) -> int:
    from collections import Counter

    from defectkit.annotate.review import render_overlays

    rows = render_overlays(_overlay_config(args, args.output))
    counts = Counter(r.agreement.status for r in rows)
    print(
        f"wrote {len(rows)} overlays to {args.output}: "
        + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    )
    return 0


def _gallery(args: argparse.Namespace) -> int:
    from defectkit.annotate.gallery import GalleryConfig, write_gallery
    from defectkit.runtime import make_config

    cfg = make_config(
        GalleryConfig,
        "annotate gallery",
        overlay=_overlay_config(args, ""),
        html=args.output,
        thumb_side=args.thumb_size,
        title=args.title,
    )
    print(f"wrote {write_gallery(cfg)}")
    return 0


def _prompts(args: argparse.Namespace) -> int:
    from defectkit.annotate.prompts import PromptsConfig, write_prompts
    from defectkit.runtime import make_config

    cfg = make_config(
        PromptsConfig,
        "annotate prompts",
        coco=args.coco,
        output=args.output,
        n_points=args.points,
        n_negative=args.negative_points,
        seed=args.seed,
    )
    doc = write_prompts(cfg)
    print(f"wrote {args.output}: {doc['info']['n_prompts']} prompts for {len(doc['images'])} images")
    return 0
