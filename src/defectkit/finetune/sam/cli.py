"""CLI wiring for ``defectkit finetune sam`` and ``defectkit predict sam`` (argparse only; torch and
segment_anything are imported inside the handlers)."""

from __future__ import annotations

import argparse

from defectkit.finetune.flags import SAM_FINETUNE_ALIASES, add_hidden_aliases
from defectkit.finetune.sam.model import MODEL_TYPES  # stdlib-only module: cheap to import


def register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit finetune sam``. Long on purpose: one flat ``add_argument`` per flag, in --help
    order; split up, the command's interface would be read in pieces."""
    p = sub.add_parser(
        "sam",
        help="fine-tune SAM (segment-anything) on COCO masks with box prompts",
        description="Fine-tune SAM's mask decoder (optionally prompt/image encoders) on the masks of a COCO "
        "file. With a frozen image encoder, embeddings are computed once per image and cached on disk.",
    )
    p.add_argument("--coco", help="training COCO file with masks, e.g. LABELS/coco/train.json (required unless "
                   "--resume RUN_DIR)")
    p.add_argument(
        "--val-coco", default=None, help="validation COCO file (val IoU/Dice per epoch; picks best.pt)"
    )
    p.add_argument(
        "--model-type",
        default="tiny",
        choices=MODEL_TYPES,
        help="SAM size; tiny = small from-scratch config for CPU (default tiny)",
    )
    p.add_argument(
        "--weights",
        dest="checkpoint",
        default=None,
        metavar="WEIGHTS",
        help="SAM state dict to start from: a path, or a name from `defectkit weights list` (sam_vit_b, "
        "sam_vit_l, sam_vit_h); none = random init (default: none)",
    )
    p.add_argument(
        "--train",
        default="decoder",
        choices=("decoder", "decoder+prompt", "all"),
        help="parts that learn (default decoder); all = image encoder too, bypassing the cache",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=400,
        help="training length in optimiser steps, rounded up to whole epochs",
    )
    p.add_argument(
        "--epochs", type=int, default=0, help="training length in epochs; when > 0 it wins over --steps"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW peak learning rate (default 1e-4)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=20, help="linear warmup steps before cosine decay")
    p.add_argument("--batch-size", type=int, default=4, help="images per optimiser step (default 4)")
    p.add_argument(
        "--prompt",
        default="box",
        choices=("box", "box+points"),
        help="box, or box plus positive/negative points sampled from the mask",
    )
    p.add_argument("--points", type=int, default=1, help="positive and negative points each (box+points)")
    p.add_argument(
        "--box-jitter",
        type=float,
        default=0.1,
        help="each box side moves by up to this fraction of the box size per step (default 0.1)",
    )
    p.add_argument("--multimask", action="store_true", help="3 masks per prompt; back-propagate the best one")
    p.add_argument("--max-instances", type=int, default=16, help="prompts per image per step (default 16)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = off)")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache folder (default: <parent of -o>/.sam_cache, shared by sibling runs)",
    )
    p.add_argument("--dataset", default=None, help="dataset folder (default: the COCO file's info.dataset)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="RUN_DIR",
        help="continue the killed run in RUN_DIR from its train_state.pt and saved config.json (--device may "
        "change); without RUN_DIR: continue -o with the flags given",
    )
    p.add_argument("--exist-ok", action="store_true", help="start over in a folder that already holds a run")
    p.add_argument(
        "--cpu-fast-path",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the CPU speed tricks (fast mask decoder, positional-encoding cache, glibc malloc setting), "
        "same results; --no-cpu-fast-path runs segment-anything's own code (default on)",
    )
    p.add_argument("-o", "--output", help="run folder, e.g. runs/sam (required unless --resume RUN_DIR)")
    p.set_defaults(func=_finetune)
    add_hidden_aliases(p, SAM_FINETUNE_ALIASES)


def register_predict(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit predict sam``."""
    p = sub.add_parser(
        "sam",
        help="SAM masks for ground-truth or detector boxes",
        description="Write SAM masks (COCO results json with RLE masks), image_scores.csv and "
        "prediction_meta.json, for ground-truth boxes or a detector's detections.json.",
    )
    p.add_argument("--weights", required=True,
                   help="SAM state dict (RUN/best.pt, an official checkpoint, or a name such as sam_vit_b)")
    p.add_argument("--model-type", default="tiny", choices=MODEL_TYPES, help="SAM size of --weights (default tiny)")
    p.add_argument("--split", required=True, help="split manifest (split.json)")
    p.add_argument("--labels", required=True, help="LABELS folder written by `defectkit convert`")
    p.add_argument(
        "--boxes",
        default="gt",
        help="gt (boxes of the ground-truth masks) or a detector's PRED_DIR/detections.json",
    )
    p.add_argument("--splits", nargs="+", default=["val", "test"], choices=("train", "val", "test"))
    p.add_argument("--min-box-score", type=float, default=0.0, help="ignore detector boxes scored below this")
    p.add_argument("--multimask", action="store_true", help="3 masks per box, keep the best predicted IoU")
    p.add_argument("--cache-dir", default=None, help="embedding cache folder (default: no cache)")
    p.add_argument("--device", default=None)
    p.add_argument("-o", "--output", required=True, help="prediction folder, e.g. runs/sam/predictions")
    p.set_defaults(func=_predict)


def finetune_config(args: argparse.Namespace):
    """The :class:`SamTrainConfig` of ``defectkit finetune sam``: from the flags, or with
    ``--resume RUN_DIR`` from ``RUN_DIR/config.json`` (``--device`` may change). InputError for bad flags."""
    from defectkit.errors import InputError
    from defectkit.finetune.sam.config import SamTrainConfig

    if args.resume:
        return _resumed_config(args)
    if args.coco is None or args.output is None:
        raise InputError("finetune sam: --coco and -o/--output are required (or --resume RUN_DIR)")
    try:
        return SamTrainConfig(
            coco=args.coco,
            val_coco=args.val_coco,
            output=args.output,
            model_type=args.model_type,
            checkpoint=args.checkpoint,
            train=args.train,
            steps=args.steps,
            epochs=args.epochs,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            batch_size=args.batch_size,
            prompt=args.prompt,
            n_points=args.points,
            box_jitter=args.box_jitter,
            multimask=args.multimask,
            max_instances=args.max_instances,
            grad_clip=args.grad_clip,
            device=args.device,
            seed=args.seed,
            cache_dir=args.cache_dir,
            dataset=args.dataset,
            resume=args.resume is not None,
            cpu_fast_path=args.cpu_fast_path,
        )
    except ValueError as exc:
        name = str(exc).split("=", 1)[0]
        flag = {"n_points": "--points", "checkpoint": "--weights"}.get(name, "--" + name.replace("_", "-"))
        raise InputError(f"finetune sam {flag}: {exc}") from exc


def _resumed_config(args: argparse.Namespace):
    import dataclasses
    from pathlib import Path

    from defectkit.errors import InputError
    from defectkit.fileio import read_json
    from defectkit.finetune.sam.config import SamTrainConfig
    from defectkit.runtime import make_config

    run = Path(args.resume)
    if args.output is not None and Path(args.output).resolve() != run.resolve():
        raise InputError(f"--resume {run} and -o {args.output} name two run folders (give one)")
    saved = read_json(run / "config.json", "SAM run config")
    fields = {f.name for f in dataclasses.fields(SamTrainConfig)}
    values = {k: v for k, v in saved.get("config", {}).items() if k in fields}
    values.update(output=str(run), resume=True)
    if args.device is not None:
        values["device"] = args.device
    return make_config(SamTrainConfig, f"--resume {run}", **values)


def _finetune(args: argparse.Namespace) -> int:
    from defectkit.weights.registry import require_weights

    cfg = finetune_config(args)
    if cfg.checkpoint:
        require_weights(cfg.checkpoint, "SAM checkpoint")  # before torch is imported
    from defectkit.finetune.sam.train import train_sam

    summary = train_sam(cfg, exist_ok=args.exist_ok)
    best = summary["best_val_iou"]
    print(
        f"wrote {summary['run_dir']}: best.pt, last.pt, train_state.pt, metrics.csv"
        + (f" (best val IoU {best:.4f})" if best is not None else "")
        + (f"; encoder runs {summary['encoder_calls']}" if summary["encoder_calls"] is not None else "")
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from defectkit.runtime import make_config
    from defectkit.weights.registry import require_weights

    require_weights(args.weights, "SAM checkpoint")  # before torch is imported
    from defectkit.finetune.sam.predict import SamPredictConfig, predict_sam

    cfg = make_config(
        SamPredictConfig,
        "predict sam",
        weights=args.weights,
        split=args.split,
        labels=args.labels,
        output=args.output,
        model_type=args.model_type,
        boxes=args.boxes,
        splits=tuple(args.splits),
        min_box_score=args.min_box_score,
        multimask=args.multimask,
        device=args.device,
        cache_dir=args.cache_dir,
    )
    summary = predict_sam(cfg)
    print(f"wrote {summary['output']}: {summary['masks']} masks on {summary['images']} images")
    return 0
