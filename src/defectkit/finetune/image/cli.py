"""CLI wiring for the image-level models: ``defectkit finetune|predict classifier|autoencoder``.

Flags default to "not given" (argparse.SUPPRESS) so that the resolved config is: dataclass
defaults < ``--resume RUN``'s saved config < ``--config FILE`` < flags actually typed.
"""

from __future__ import annotations

import argparse

_S = argparse.SUPPRESS
_MODELS = {"classifier": "ClassifierConfig", "autoencoder": "AutoencoderConfig"}


def _freeze_epochs(value: str) -> int:
    if value == "all":
        return -1
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of epochs or 'all', got {value!r}") from None


def _common_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--config", metavar="FILE", help="YAML file of options (flags typed here override it)")
    g.add_argument("--split", metavar="SPLIT_JSON", help="split manifest from 'defectkit split'")
    g.add_argument(
        "-o", "--output", metavar="RUN", help="run folder (config.json, metrics.csv, best.pt, last.pt)"
    )
    g.add_argument("--resume", metavar="RUN", help="continue the run in RUN from RUN/last.pt")
    g.add_argument(
        "--exist-ok", action="store_true", help="start over in a run folder that already holds a run"
    )
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--seed", type=int)
    g.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--steps",
        type=int,
        help="training length in optimiser steps, rounded up to whole epochs: the same budget on any "
        "dataset size",
    )
    g.add_argument("--epochs", type=int, help="training length in epochs; when given, wins over --steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--image-size", type=int, help="square input side in pixels")
    g.add_argument("--optimizer", choices=("adam", "adamw", "sgd"))
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--scheduler", choices=("none", "cosine", "step"))
    g.add_argument("--step-size", type=int, help="epochs between LR drops (step schedule)")
    g.add_argument("--step-gamma", type=float, help="LR factor per drop (step schedule)")
    g.add_argument("--patience", type=int, help="early-stop after N epochs without val improvement (0 = off)")
    g = p.add_argument_group("augmentation (train split only)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=_S)
    g.add_argument("--hflip", type=float, help="horizontal flip probability")
    g.add_argument("--vflip", type=float, help="vertical flip probability")
    g.add_argument("--rotate", type=float, help="rotation limit in degrees")
    g.add_argument("--color-jitter", type=float, help="brightness/contrast/saturation strength (0 = off)")


def register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit finetune classifier`` and ``defectkit finetune autoencoder``. Long on purpose: one
    flat ``add_argument`` per flag, in --help order; split up, the command's interface would be read
    in pieces."""
    p = sub.add_parser(
        "classifier",
        argument_default=_S,
        help="fine-tune a torchvision classifier (ResNet)",
        description="Train a torchvision classifier (final layer -> Dropout + Linear) on a split.",
    )
    _common_train_flags(p)
    g = p.add_argument_group("model")
    g.add_argument("--arch", help="torchvision model name (default resnet18)")
    g.add_argument(
        "--weights", help="imagenet (torchvision's file, from the weights folder or the torch hub cache), "
        "none (from scratch), a name from `defectkit weights list` (resnet18, ...) or a state-dict PATH"
    )
    g.add_argument("--task", choices=("binary", "defect-type"))
    g.add_argument("--dropout", type=float, help="dropout before the final Linear")
    g.add_argument(
        "--freeze-epochs",
        type=_freeze_epochs,
        metavar="N|all",
        help="freeze the backbone for the first N epochs, or for the whole run",
    )
    g.add_argument("--loss", choices=("ce", "weighted-ce", "focal"))
    g.add_argument("--class-weights", choices=("auto", "inverse", "effective-number", "none"))
    g.add_argument("--beta", type=float, help="beta of the effective-number class weights (default 0.999)")
    g.add_argument("--focal-gamma", type=float)
    g.add_argument("--sampler", choices=("none", "balanced"))
    g.add_argument("--select", choices=("loss", "f1"), help="val metric for best.pt and early stopping")
    g.add_argument(
        "--val-threshold",
        action=argparse.BooleanOptionalAction,
        default=_S,
        help="choose the decision threshold on val (max F1) instead of 0.5",
    )
    g.add_argument(
        "--precise-bn",
        action=argparse.BooleanOptionalAction,
        default=_S,
        help="recompute BatchNorm statistics over the train split after every epoch (default on)",
    )
    p.set_defaults(func=_train, model_name="classifier", config_class="defectkit.finetune.image.config:ClassifierConfig")

    p = sub.add_parser(
        "autoencoder",
        argument_default=_S,
        help="train the AutoEncoder baseline (good images only)",
        description="Train an AutoEncoder on the train split's good images only.",
    )
    _common_train_flags(p)
    g = p.add_argument_group("model")
    g.add_argument(
        "--arch",
        choices=("ssim-ae", "conv"),
        help="ssim-ae: the MVTec AD paper's AutoEncoder (dense bottleneck; default); conv: fully convolutional",
    )
    g.add_argument("--width", type=int, help="conv: channels of the first stage (default 32)")
    g.add_argument("--latent", type=int, help="bottleneck size: values (ssim-ae, default 100) or channels (conv)")
    g.add_argument("--loss", choices=("l2", "ssim", "l2+ssim"), help="training loss and anomaly map (default ssim)")
    g.add_argument("--smooth-sigma", type=float, help="Gaussian sigma of the anomaly map, pixels (default 2)")
    g.add_argument(
        "--reduction",
        choices=("max", "mean", "top1", "top01"),
        help="image score from the map: top1 = mean of the top 1%% of pixels (default), top01 = of the top 0.1%%",
    )
    g.add_argument(
        "--normalize-map",
        action=argparse.BooleanOptionalAction,
        default=_S,
        help="standardise each map pixel by the train-good images' errors there (default on)",
    )
    g.add_argument(
        "--threshold", metavar="RULE",
        help="val threshold saved for predictions: balanced (default: max balanced accuracy), max-f1, "
        "good-recall=R or fixed=T",
    )
    g.add_argument("--good-percentile", type=float, help="threshold percentile when val has no defect (default 95)")
    g.add_argument("--select", choices=("auroc", "loss"), help="val metric for best.pt and early stopping")
    p.set_defaults(func=_train, model_name="autoencoder", config_class="defectkit.finetune.image.config:AutoencoderConfig")


def register_predict(sub: argparse._SubParsersAction) -> None:
    """Add ``defectkit predict classifier`` and ``defectkit predict autoencoder``."""
    for name, what in (
        ("classifier", "image scores of a trained classifier"),
        ("autoencoder", "image scores and anomaly maps of a trained AutoEncoder"),
    ):
        p = sub.add_parser(name, help=f"write {what}", description=f"Write {what} (image_scores.csv).")
        p.add_argument("--weights", required=True, metavar="CKPT", help="RUN/best.pt")
        p.add_argument("-o", "--output", required=True, metavar="PRED_DIR")
        p.add_argument(
            "--split", default="", metavar="SPLIT_JSON", help="default: the one the model was trained on"
        )
        p.add_argument(
            "--images", metavar="DIR", help="instead of a split: score every image in DIR (unlabelled), "
            "decided at the checkpoint's val threshold"
            + ("; writes anomaly maps and heatmap overlays too" if name == "autoencoder" else "")
        )
        p.add_argument("--splits", nargs="+", default=["val", "test"], choices=("train", "val", "test"))
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--device", default=None)
        if name == "autoencoder":
            p.add_argument("--no-maps", action="store_true", help="do not write anomaly_maps/*.npy")
        p.set_defaults(func=_predict, model_name=name)


def build_train_config(args: argparse.Namespace):
    """The resolved config of ``defectkit finetune classifier|autoencoder`` and whether to resume."""
    import dataclasses

    from defectkit.finetune.image import config as ic

    cls = getattr(ic, _MODELS[args.model_name])
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    layers = []
    resume = getattr(args, "resume", None)
    if resume:
        from defectkit.finetune.image.runs import read_run_config  # imports torch

        layers.append((f"{resume}/config.json", read_run_config(resume)))
    if getattr(args, "config", None):
        layers.append((args.config, ic.load_config_file(args.config, cls, args.model_name)))
    layers.append(("command line", given))
    if resume:
        layers.append(("--resume", {"output": resume}))
    return ic.resolve_config(cls, *layers), bool(resume)


def _train(args: argparse.Namespace) -> int:
    from defectkit.weights.registry import require_weights

    config, resume = build_train_config(args)
    if getattr(config, "weights", "none") not in ("none", "imagenet"):
        require_weights(config.weights, "--weights file")  # before torch is imported
    if args.model_name == "classifier":
        from defectkit.finetune.image.train import train_classifier as train
    else:
        from defectkit.finetune.image.train import train_autoencoder as train
    run = train(config, resume=resume, exist_ok=getattr(args, "exist_ok", False))
    print(f"wrote {run}: best.pt, last.pt, metrics.csv, config.json")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from defectkit.finetune.image.config import ImagePredictConfig
    from defectkit.runtime import make_config
    from defectkit.weights.registry import require_weights

    require_weights(args.weights, "checkpoint")  # before torch is imported
    if args.images:
        return _predict_images(args)
    config = make_config(
        ImagePredictConfig,
        f"predict {args.model_name}",
        weights=args.weights,
        output=args.output,
        split=args.split,
        splits=tuple(args.splits),
        batch_size=args.batch_size,
        device=args.device,
        save_maps=not getattr(args, "no_maps", False),
    )
    if args.model_name == "classifier":
        from defectkit.finetune.image.predict import predict_classifier as predict
    else:
        from defectkit.finetune.image.predict import predict_autoencoder as predict
    out = predict(config)
    print(f"wrote {out / 'image_scores.csv'}")
    return 0


def _predict_images(args: argparse.Namespace) -> int:
    """``predict classifier|autoencoder --images DIR`` (defectkit.finetune.image.folder_predict)."""
    from defectkit.errors import InputError, make_config
    from defectkit.finetune.image.folder_predict import FolderPredictConfig, predict_images

    if args.split:
        raise InputError("--images and --split: give one (a folder of new images, or a split manifest)")
    config = make_config(FolderPredictConfig, f"predict {args.model_name}", model=args.model_name,
                         weights=args.weights, images=args.images, output=args.output,
                         batch_size=args.batch_size, device=args.device,
                         save_maps=not getattr(args, "no_maps", False))
    out = predict_images(config)
    print(f"wrote {out / 'image_scores.csv'}" + (" and overlays/" if args.model_name == "autoencoder" else ""))
    return 0
