"""Training the image-level models on a split manifest: :func:`train_classifier` and
:func:`train_autoencoder` (the AutoEncoder on train-good images only), each writing RUN/config.json,
metrics.csv, last.pt, best.pt and train.log through the shared loop of :mod:`.engine`.

Each checkpoint carries the model spec and a decision threshold chosen on val: the classifier's
max-F1 cut (``--val-threshold``) or 0.5; the AutoEncoder's by ``config.threshold`` (balanced
accuracy by default; the ``good_percentile`` of val-good scores when val has no defect image),
after :func:`calibrate_checkpoint` has stored the per-pixel statistics of good images' error maps.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from defectkit.errors import InputError
from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig
from defectkit.finetune.image.model import (
    AUTOENCODER_KIND,
    CLASSIFIER_KIND,
    anomaly_maps,
    build_autoencoder,
    defect_score,
    load_autoencoder,
    make_score_fn,
)
from defectkit.runtime import config_to_dict, prepare_run_dir, resolve_device, seed_everything

log = logging.getLogger(__name__)

FIXED_THRESHOLD = 0.5


# ---- the classifier ---------------------------------------------------------------------------


def _threshold_fn(config: ClassifierConfig):
    """The classifier's val threshold: eval's max-F1 cut (``config.val_threshold``, when val holds
    both classes), else :data:`FIXED_THRESHOLD`."""
    from defectkit.finetune.image.metrics import val_threshold

    def fn(scores: np.ndarray, labels: np.ndarray) -> float:
        if config.val_threshold and (labels == 1).any() and (labels == 0).any():
            return val_threshold(labels, scores)
        return FIXED_THRESHOLD

    return fn


def _classifier_datasets(config: ClassifierConfig, manifest, names: tuple[str, ...]):
    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.augment import train_augment

    classes = names[1:] if config.task == "defect-type" else None
    augment = train_augment(config)
    kw = dict(image_size=config.image_size, normalize=True, classes=classes)
    train = ManifestDataset(manifest, "train", transform=augment, **kw)
    val = ManifestDataset(manifest, "val", **kw)
    return train, val, augment


def _classifier_meta(config: ClassifierConfig, manifest, names: tuple[str, ...]) -> dict[str, Any]:
    """What every checkpoint carries besides weights and optimiser state."""
    return {
        "kind": CLASSIFIER_KIND,
        "config": config_to_dict(config),
        "split_fingerprint": manifest.fingerprint,
        "model_spec": {
            "arch": config.arch,
            "num_classes": len(names),
            "classes": list(names),
            "dropout": config.dropout,
            "task": config.task,
            "image_size": config.image_size,
            "normalize": True,
        },
        "threshold": FIXED_THRESHOLD,
        "threshold_method": "max-f1 on val" if config.val_threshold else "fixed 0.5",
    }


def _classifier_setup(config: ClassifierConfig, manifest, names, counts, dinfo, device):
    """Model, data, loss, optimiser and per-epoch hooks wired into a FitSetup: (setup, bare model)."""
    from defectkit.finetune.image.data import EpochSampler, balanced_weights, make_loader
    from defectkit.finetune.image.dist import wrap_ddp
    from defectkit.finetune.image.engine import FitSetup
    from defectkit.finetune.image.losses import build_classification_loss
    from defectkit.finetune.image.model import build_classifier, head_name, set_backbone_trainable
    from defectkit.finetune.image.runs import build_optimizer, build_scheduler

    model = build_classifier(config.arch, len(names), weights=config.weights, dropout=config.dropout)
    head = head_name(model).rsplit(".", 1)[0]  # the Sequential that holds Dropout + Linear
    model.to(device)
    train_ds, val_ds, augment = _classifier_datasets(config, manifest, names)
    weights = balanced_weights(train_ds.targets()) if config.sampler == "balanced" else None
    sampler = EpochSampler(
        len(train_ds), seed=config.seed, weights=weights, rank=dinfo.rank, world=dinfo.world
    )
    criterion = build_classification_loss(
        config.loss, counts, config.resolved_class_weights, beta=config.beta, gamma=config.focal_gamma
    ).to(device)
    optimizer = build_optimizer(model.parameters(), config)

    def before_epoch(epoch: int) -> None:
        sampler.set_epoch(epoch)
        if augment is not None:
            augment.set_epoch(epoch)
        frozen = config.freeze_epochs == -1 or epoch <= config.freeze_epochs
        set_backbone_trainable(model, head, not frozen)

    if not len(val_ds):
        log.warning("%s: the val split is empty: best.pt is chosen on the train loss", config.split)
    train_loader = make_loader(train_ds, config.batch_size, sampler=sampler, workers=config.workers, train=True)
    epochs = config.epochs_for(len(train_loader))
    setup = FitSetup(
        model=wrap_ddp(model, dinfo, device, find_unused=config.freeze_epochs != 0),
        criterion=criterion,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config, epochs),
        train_loader=train_loader,
        val_loader=make_loader(val_ds, config.batch_size) if len(val_ds) else None,
        device=device,
        epochs=epochs,
        run_dir=Path(config.output),
        score_fn=defect_score,
        threshold_fn=_threshold_fn(config),
        select=config.select,
        patience=config.patience,
        recalibrate_bn=config.precise_bn,
        before_epoch=before_epoch,
        dist=dinfo,
        meta=_classifier_meta(config, manifest, names),
    )
    return setup, model


def train_classifier(config: ClassifierConfig, *, resume: bool = False, exist_ok: bool = False) -> Path:
    """Train per ``config``; with ``resume`` continue ``config.output/last.pt``. Returns the run folder."""
    from defectkit.finetune.image.data import check_train_classes, class_counts, class_names, load_manifest
    from defectkit.finetune.image.dist import barrier, distributed
    from defectkit.finetune.image.engine import fit
    from defectkit.finetune.image.runs import open_run, resume_state, run_log

    run_dir = Path(config.output)
    manifest = load_manifest(config.split)
    names = class_names(manifest, config.task)
    counts = class_counts(manifest, "train", names)
    check_train_classes(config.split, names, counts)
    with distributed(resolve_device(config.device)) as (dinfo, device):
        seed_everything(config.seed)
        # set up first (the epochs follow from the step budget and the loader): a bad --weights
        # file or bad data then leaves no run folder behind
        setup, model = _classifier_setup(config, manifest, names, counts, dinfo, device)
        ckpt = open_run(run_dir, CLASSIFIER_KIND, setup.epochs, resume, exist_ok)
        if dinfo.rank == 0:
            prepare_run_dir(run_dir, config)
        barrier()
        state = resume_state(setup, model, ckpt)
        with run_log(run_dir, dinfo.rank == 0):
            fit(setup, state)
        barrier()
    return run_dir


# ---- the AutoEncoder ---------------------------------------------------------------------------


def make_threshold_fn(good_percentile: float, rule: str = "max-f1"):
    """Val threshold: eval's ``rule`` (:mod:`defectkit.eval.thresholds`) when val holds both
    classes (a ``fixed=T`` rule always), else the ``good_percentile`` of the good scores."""
    from defectkit.eval.thresholds import choose_threshold, parse_threshold_rule
    from defectkit.finetune.image.metrics import good_percentile_threshold

    parsed = parse_threshold_rule(rule)

    def fn(scores: np.ndarray, labels: np.ndarray) -> float:
        if parsed.kind == "fixed" or ((labels == 1).any() and (labels == 0).any()):
            return choose_threshold(labels, scores, parsed)
        if (labels == 0).any():
            return good_percentile_threshold(scores[labels == 0], good_percentile)
        return float("nan")

    return fn


def _train_good_dataset(config: AutoencoderConfig, manifest):
    from torch.utils.data import Subset

    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.augment import train_augment

    augment = train_augment(config)
    full = ManifestDataset(manifest, "train", image_size=config.image_size, transform=augment)
    good = [i for i, e in enumerate(full.entries) if e.label == 0]
    if not good:
        raise InputError(f"{config.split}: the train split has no good image to train the AutoEncoder on")
    return Subset(full, good), augment


def _autoencoder_meta(config: AutoencoderConfig, manifest) -> dict[str, Any]:
    """What every checkpoint carries besides weights and optimiser state."""
    return {
        "kind": AUTOENCODER_KIND,
        "config": config_to_dict(config),
        "split_fingerprint": manifest.fingerprint,
        "model_spec": {
            "arch": "ssim-ae" if config.arch == "ssim-ae" else "conv-autoencoder",
            "width": config.width,
            "latent": config.latent,
            "image_size": config.image_size,
            "loss": config.loss,
            "smooth_sigma": config.smooth_sigma,
            "reduction": config.reduction,
            "normalize_map": config.normalize_map,
        },
        "threshold": float("nan"),
        "threshold_method": f"{config.threshold} on val (else {config.good_percentile:g}th percentile of val good)",
    }


def _autoencoder_setup(config: AutoencoderConfig, manifest, dinfo, device):
    """Model, data, loss, optimiser and per-epoch hooks wired into a FitSetup: (setup, bare model)."""
    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.data import EpochSampler, make_loader
    from defectkit.finetune.image.dist import wrap_ddp
    from defectkit.finetune.image.engine import FitSetup
    from defectkit.finetune.image.losses import ReconstructionLoss
    from defectkit.finetune.image.runs import build_optimizer, build_scheduler

    meta = _autoencoder_meta(config, manifest)
    model = build_autoencoder(meta["model_spec"]).to(device)
    train_ds, augment = _train_good_dataset(config, manifest)
    sampler = EpochSampler(len(train_ds), seed=config.seed, rank=dinfo.rank, world=dinfo.world)
    val_ds = ManifestDataset(manifest, "val", image_size=config.image_size)
    optimizer = build_optimizer(model.parameters(), config)
    train_loader = make_loader(train_ds, config.batch_size, sampler=sampler, workers=config.workers, train=True)
    epochs = config.epochs_for(len(train_loader))

    def before_epoch(epoch: int) -> None:
        sampler.set_epoch(epoch)
        if augment is not None:
            augment.set_epoch(epoch)

    setup = FitSetup(
        model=wrap_ddp(model, dinfo, device),
        criterion=ReconstructionLoss(config.loss),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config, epochs),
        train_loader=train_loader,
        val_loader=make_loader(val_ds, config.batch_size),
        device=device,
        epochs=epochs,
        run_dir=Path(config.output),
        score_fn=make_score_fn(config.loss, config.smooth_sigma, config.reduction),
        threshold_fn=make_threshold_fn(config.good_percentile, config.threshold),
        select=config.select,
        patience=config.patience,
        target_key="image",
        before_epoch=before_epoch,
        dist=dinfo,
        meta=meta,
    )
    return setup, model


@torch.no_grad()
def good_map_stats(model: nn.Module, loader, spec: dict[str, Any], device) -> dict[str, torch.Tensor]:
    """Per-pixel mean and std (HxW float32, CPU) of the smoothed error maps of ``loader``'s images
    (the train split's good images, not augmented) under ``model``."""
    model.eval()
    total = sq = None
    n = 0
    for batch in loader:
        x = batch["image"].to(device)
        maps = anomaly_maps(model(x), x, loss=spec["loss"], sigma=spec["smooth_sigma"]).double()
        total = maps.sum(0) if total is None else total + maps.sum(0)
        sq = (maps**2).sum(0) if sq is None else sq + (maps**2).sum(0)
        n += len(x)
    mean = total / n
    std = (sq / n - mean**2).clamp_min(0).sqrt()
    return {"mean": mean.float().cpu(), "std": std.float().cpu()}


def calibrate_checkpoint(path: Path, config: AutoencoderConfig, manifest, device) -> None:
    """Store in the checkpoint ``path`` the per-pixel statistics of its error maps over the train
    split's good images (``map_stats``) and the val threshold on the maps standardised by them."""
    from torch.utils.data import Subset

    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.data import make_loader
    from defectkit.finetune.image.engine import evaluate
    from defectkit.finetune.image.losses import ReconstructionLoss
    from defectkit.runtime import save_checkpoint

    model, ckpt = load_autoencoder(path)
    model.to(device)
    spec = ckpt["model_spec"]
    train = ManifestDataset(manifest, "train", image_size=config.image_size)
    good = Subset(train, [i for i, e in enumerate(train.entries) if e.label == 0])
    stats = good_map_stats(model, make_loader(good, config.batch_size), spec, device)
    val = make_loader(ManifestDataset(manifest, "val", image_size=config.image_size), config.batch_size)
    score = make_score_fn(spec["loss"], spec["smooth_sigma"], spec["reduction"], stats)
    ev = evaluate(model, ReconstructionLoss(spec["loss"]), val, device, score, target_key="image")
    ckpt["map_stats"] = stats
    ckpt["threshold"] = make_threshold_fn(config.good_percentile, config.threshold)(ev.scores, ev.labels)
    save_checkpoint(ckpt, path)
    log.info("%s: error maps standardised by %d good images; val threshold %.4g", path, len(good), ckpt["threshold"])


def train_autoencoder(config: AutoencoderConfig, *, resume: bool = False, exist_ok: bool = False) -> Path:
    """Train per ``config`` on train-good images; with ``resume`` continue ``config.output/last.pt``."""
    from defectkit.finetune.image.data import load_manifest
    from defectkit.finetune.image.dist import barrier, distributed
    from defectkit.finetune.image.engine import fit
    from defectkit.finetune.image.runs import open_run, resume_state, run_log

    run_dir = Path(config.output)
    manifest = load_manifest(config.split)
    if not manifest.subset("train"):
        raise InputError(f"{config.split}: the train split is empty (nothing to train on)")
    if not any(e.label == 0 for e in manifest.subset("val")):
        raise InputError(
            f"{config.split}: the val split has no good image; the AutoEncoder needs one to "
            "choose its threshold (make the split with --val-fraction > 0)"
        )
    with distributed(resolve_device(config.device)) as (dinfo, device):
        seed_everything(config.seed)
        # set up first (the epochs follow from the step budget and the loader): a bad --weights
        # file or bad data then leaves no run folder behind
        setup, model = _autoencoder_setup(config, manifest, dinfo, device)
        ckpt = open_run(run_dir, AUTOENCODER_KIND, setup.epochs, resume, exist_ok)
        if dinfo.rank == 0:
            prepare_run_dir(run_dir, config)
        barrier()
        state = resume_state(setup, model, ckpt)
        with run_log(run_dir, dinfo.rank == 0):
            fit(setup, state)
            if config.normalize_map and dinfo.rank == 0:
                for name in ("best.pt", "last.pt"):
                    calibrate_checkpoint(run_dir / name, config, manifest, device)
        barrier()
    return run_dir
