"""CLI wiring for YOLO-World / ultralytics detectors: ``embed-text``, ``finetune yolo-world``,
``predict yolo-world`` (argparse only; heavy imports inside handlers)."""

from __future__ import annotations

import argparse
from pathlib import Path

EMBED_EPILOG = """\
example:
  defectkit embed-text --names "broken glass" "small chip" "contamination" \\
      --clip-weights ~/models/ViT-B-32.pt -o runs/text_embeddings.pt

Weights come only from --clip-weights or CLIP's cache (~/.cache/clip/ViT-B-32.pt); nothing is downloaded.
"""

FINETUNE_EPILOG = """\
examples:
  defectkit finetune yolo-world --data runs/labels/yolo/data.yaml --model yolov8s-worldv2.pt \\
      --text-embeddings runs/text_embeddings.pt --steps 1000 --image-size 640 -o runs/yolo_world
  defectkit finetune yolo-world --data runs/labels/yolo/data.yaml --model yolo11s.yaml -o runs/yolo11s
  defectkit finetune yolo-world --resume runs/yolo_world

--device 0,1,2,3 runs ultralytics' own multi-GPU DDP (one process per GPU, --batch-size is the total).
--set key=value passes any other ultralytics training argument (lr0=0.002 mosaic=0.5 plots=False ...).

An ultralytics .pt file is trusted code: loading it unpickles Python objects, which can run anything the
file carries (as ultralytics says). Use only weights you made or got from a source you trust.
"""

PREDICT_EPILOG = """\
example:
  defectkit predict yolo-world --weights runs/yolo_world/weights/best.pt --split runs/split.json \\
      --labels runs/labels -o runs/yolo_world/predictions

An ultralytics .pt file is trusted code: loading it unpickles Python objects, which can run anything the
file carries (as ultralytics says). Use only weights you made or got from a source you trust.
"""


def register_top(subparsers: argparse._SubParsersAction) -> None:
    """Add ``defectkit embed-text``."""
    p = subparsers.add_parser(
        "embed-text",
        help="CLIP ViT-B/32 text embeddings of class names (for YOLO-World)",
        description="Compute OpenAI CLIP ViT-B/32 text embeddings (512-d, L2-normalised) of class names "
        "and save them with the names and the model that made them.",
        epilog=EMBED_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--names",
        nargs="+",
        required=True,
        metavar="NAME",
        help='class names in natural language; "a/b" gives synonyms a and b',
    )
    p.add_argument(
        "--clip-weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="CLIP ViT-B-32.pt file, or the name clip_vit_b_32 (default: the weights folder's "
        "ViT-B-32.pt, else ~/.cache/clip/ViT-B-32.pt)",
    )
    p.add_argument("--device", default="cpu", help="torch device for CLIP (default cpu)")
    p.add_argument("-o", "--output", type=Path, required=True, help="embeddings file to write (.pt)")
    p.set_defaults(func=_embed_text)


def register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit finetune yolo-world``. Long on purpose: one flat ``add_argument`` per flag, in
    --help order; split up, the command's interface would be read in pieces."""
    p = sub.add_parser(
        "yolo-world",
        help="fine-tune YOLO-World (or a closed-set ultralytics detector)",
        description="Train an ultralytics detector on a `defectkit convert` YOLO folder, offline. YOLO-World "
        "models (a *-world*.yaml config, or a .pt holding a WorldModel) take their class text features "
        "from --text-embeddings.",
        epilog=FINETUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, help="LABELS/yolo/data.yaml")
    p.add_argument(
        "--model",
        default="yolov8s-worldv2.yaml",
        help="weights: a .pt path or a name from `defectkit weights list` (e.g. yolov8s-worldv2, read from "
        "the weights folder; never downloaded implicitly), or a config .yaml to train from scratch "
        "(default yolov8s-worldv2.yaml)",
    )
    p.add_argument(
        "--text-embeddings",
        type=Path,
        default=None,
        metavar="FILE",
        help="file from `defectkit embed-text` (YOLO-World models only)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="training length in optimiser steps over the train images, rounded up to whole epochs",
    )
    p.add_argument(
        "--epochs", type=int, default=0, help="training length in epochs; when > 0 it wins over --steps"
    )
    p.add_argument("--image-size", type=int, default=640, help="training image side in pixels (ultralytics imgsz)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="total batch size (-1: ultralytics AutoBatch on GPU)"
    )
    p.add_argument("--device", default=None, help="cpu, 0, or 0,1,... for multi-GPU DDP (default: auto)")
    p.add_argument("--workers", type=int, default=2, help="dataloader workers per process (CPU: ignored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--transpose",
        type=float,
        default=0.0,
        metavar="P",
        help="probability of swapping x and y of a training image (with --set flipud=0.5: every 90-degree "
        "rotation and mirror; for objects seen from above). Default 0",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="other ultralytics training arguments, e.g. lr0=0.002 mosaic=0.5 (repeatable)",
    )
    p.add_argument("-o", "--output", type=Path, help="RUN_DIR; every output lands there")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the killed run in RUN_DIR (other flags except --device are ignored)",
    )
    p.set_defaults(func=_finetune)


def register_predict(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit predict yolo-world``."""
    p = sub.add_parser(
        "yolo-world",
        help="COCO detections + image scores from a YOLO-World / YOLO checkpoint",
        description="Predict boxes on the images of a split manifest; writes detections.json (COCO results, "
        "the converter's image and category ids), image_scores.csv (max box score) and prediction_meta.json.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--weights", type=Path, required=True,
                   help="RUN/weights/best.pt (or a name from `defectkit weights list`)")
    p.add_argument("--split", type=Path, required=True, help="split.json")
    p.add_argument("--labels", type=Path, required=True, help="LABELS folder from `defectkit convert`")
    p.add_argument(
        "--splits", nargs="+", default=["val", "test"], help="splits to predict (default: val test)"
    )
    p.add_argument("--conf", type=float, default=0.001, help="minimum box score kept (default 0.001)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--image-size", type=int, default=None, help="inference size (default: the training size)")
    p.add_argument("--max-det", type=int, default=100, help="boxes per image at most (default 100)")
    p.add_argument("--batch-size", type=int, default=8, help="images per inference batch")
    p.add_argument("--device", default=None, help="cpu or 0 (default: auto)")
    p.add_argument("-o", "--output", type=Path, required=True, help="PRED_DIR")
    p.set_defaults(func=_predict)


def _input_error(exc: ValueError):
    from defectkit.errors import InputError

    return InputError(str(exc))


def _embed_text(args: argparse.Namespace) -> int:
    from defectkit.finetune.yolo_world.text_embeddings import EmbedTextConfig, embed_text

    try:
        cfg = EmbedTextConfig(
            names=tuple(args.names), output=args.output, clip_weights=args.clip_weights, device=args.device
        )
    except ValueError as exc:
        raise _input_error(exc) from exc
    out = embed_text(cfg)
    print(f"wrote {len(cfg.names)} name(s) to {out}")
    return 0


def finetune_config(args: argparse.Namespace):
    """The :class:`YoloFinetuneConfig` of ``defectkit finetune yolo-world`` (InputError for bad flags)."""
    from defectkit.errors import InputError
    from defectkit.finetune.yolo_world.config import YoloFinetuneConfig, parse_set_overrides

    if args.data is None or args.output is None:
        raise InputError("--data and -o/--output are required (or --resume RUN_DIR)")
    try:
        return YoloFinetuneConfig(
            data=args.data,
            model=args.model,
            output=args.output,
            text_embeddings=args.text_embeddings,
            steps=args.steps,
            epochs=args.epochs,
            imgsz=args.image_size,
            batch=args.batch_size,
            device=args.device,
            workers=args.workers,
            seed=args.seed,
            transpose=args.transpose,
            overrides=parse_set_overrides(args.overrides),
        )
    except ValueError as exc:
        raise _input_error(exc) from exc


def _finetune(args: argparse.Namespace) -> int:
    from defectkit.finetune.yolo_world.train import finetune_yolo, resume_yolo

    if args.resume is not None:
        result = resume_yolo(args.resume, device=args.device)
    else:
        result = finetune_yolo(finetune_config(args))
    m = result.metrics
    print(
        f"val mAP50 {m.get('metrics/mAP50(B)', float('nan')):.4f}  mAP50-95 "
        f"{m.get('metrics/mAP50-95(B)', float('nan')):.4f}  ({result.seconds:.0f} s)"
    )
    print(f"best weights: {result.best}")
    return 0


def predict_config(args: argparse.Namespace):
    """The :class:`YoloPredictConfig` of ``defectkit predict yolo-world`` (InputError for bad flags)."""
    from defectkit.finetune.yolo_world.predict import YoloPredictConfig

    try:
        return YoloPredictConfig(
            weights=args.weights,
            split=args.split,
            labels=args.labels,
            output=args.output,
            splits=tuple(args.splits),
            conf=args.conf,
            iou=args.iou,
            imgsz=args.image_size,
            max_det=args.max_det,
            batch=args.batch_size,
            device=args.device,
        )
    except ValueError as exc:
        raise _input_error(exc) from exc


def _predict(args: argparse.Namespace) -> int:
    from defectkit.finetune.yolo_world.predict import predict_yolo

    out = predict_yolo(predict_config(args))
    print(f"wrote {out / 'detections.json'}, {out / 'image_scores.csv'}")
    return 0
