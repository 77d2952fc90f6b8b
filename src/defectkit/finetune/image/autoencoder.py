"""The AutoEncoder baseline: an AutoEncoder trained on train-good images only.

Anomaly map = per-pixel reconstruction error (L2 and/or 1-SSIM, the training loss's error),
Gaussian-smoothed; image score = a reduction of the smoothed map (the mean of its top 1 % by
default). The networks are in autoencoder_model. The decision threshold is chosen on val
(``config.threshold``, balanced accuracy by default; the ``good_percentile`` of val-good scores
when val has no defect image) and stored in every checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from defectkit.errors import InputError
from defectkit.fileio import ensure_dir, mark_incomplete
from defectkit.finetune.image.autoencoder_model import (  # noqa: F401  (re-exported)
    ConvAutoEncoder,
    SSIMAutoEncoder,
    build_autoencoder,
)
from defectkit.finetune.image.config import AutoencoderConfig, ImagePredictConfig
from defectkit.runtime import config_to_dict, prepare_run_dir, resolve_device, seed_everything

log = logging.getLogger(__name__)

KIND = "anomaly"


def anomaly_maps(
    recon: torch.Tensor,
    image: torch.Tensor,
    *,
    loss: str,
    sigma: float,
    stats: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Smoothed reconstruction-error maps, Nx3xHxW pair -> NxHxW float (higher = more anomalous).

    ``stats`` (``{"mean": HxW, "std": HxW}`` from ``good_map_stats``): each pixel is standardised
    by the error that good images have there, so a place that is always hard to reconstruct (the
    bottle's bright rim) counts as much as any other.
    """
    from defectkit.finetune.image.losses import gaussian_smooth, reconstruction_error_map

    maps = gaussian_smooth(reconstruction_error_map(recon, image, loss), sigma)
    if stats is not None:
        mean, std = stats["mean"].to(maps), stats["std"].to(maps)
        maps = (maps - mean) / (std + 0.1 * std.mean() + 1e-12)  # floor: no division by ~0
    return maps


def reduce_maps(maps: torch.Tensor, reduction: str) -> torch.Tensor:
    """NxHxW -> N image scores: "max", "mean", "top1" / "top01" (mean of the highest 1% / 0.1%
    of pixels: a defect of a few dozen pixels still counts, one outlier pixel does not)."""
    flat = maps.flatten(1)
    if reduction == "max":
        return flat.max(dim=1).values
    if reduction == "mean":
        return flat.mean(dim=1)
    k = max(1, flat.shape[1] // (1000 if reduction == "top01" else 100))
    return flat.topk(k, dim=1).values.mean(dim=1)


def make_score_fn(loss: str, sigma: float, reduction: str, stats: dict[str, torch.Tensor] | None = None):
    def score(recon: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return reduce_maps(anomaly_maps(recon, image, loss=loss, sigma=sigma, stats=stats), reduction)

    return score


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


def _meta(config: AutoencoderConfig, manifest) -> dict[str, Any]:
    """What every checkpoint carries besides weights and optimiser state."""
    return {
        "kind": KIND,
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


def _fit_setup(config: AutoencoderConfig, manifest, dinfo, device):
    """Model, data, loss, optimiser and per-epoch hooks wired into a FitSetup: (setup, bare model)."""
    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.data import EpochSampler, make_loader
    from defectkit.finetune.image.dist import wrap_ddp
    from defectkit.finetune.image.engine import FitSetup
    from defectkit.finetune.image.losses import ReconstructionLoss
    from defectkit.finetune.image.runs import build_optimizer, build_scheduler

    meta = _meta(config, manifest)
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
        setup, model = _fit_setup(config, manifest, dinfo, device)
        ckpt = open_run(run_dir, KIND, setup.epochs, resume, exist_ok)
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


def load_autoencoder(weights: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained AutoEncoder from a defectkit checkpoint: (model in eval mode, checkpoint)."""
    from defectkit.finetune.image.runs import load_image_checkpoint

    ckpt = load_image_checkpoint(weights, KIND)
    model = build_autoencoder(ckpt["model_spec"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def predict_autoencoder(config: ImagePredictConfig) -> Path:
    """Write image_scores.csv, prediction_meta.json and (``save_maps``) anomaly_maps/<name>.npy
    (float32 HxW at each image's original size, bilinear from the model's resolution)."""
    import torch.nn.functional as F

    from defectkit.finetune.image.data import load_manifest
    from defectkit.finetune.image.predict import (
        prediction_meta,
        score_splits,
        warn_if_other_split,
        write_predictions,
    )
    from defectkit.predictions import write_anomaly_map

    model, ckpt = load_autoencoder(config.weights)
    spec = ckpt["model_spec"]
    split_path = config.split or ckpt["config"]["split"]
    manifest = load_manifest(split_path)
    device = resolve_device(config.device)
    model.to(device)
    if config.save_maps:  # maps are written while scoring: mark the folder until the CSV is there too
        mark_incomplete(ensure_dir(config.output), "defectkit predict autoencoder")

    stats = ckpt.get("map_stats")  # written after training (calibrate_checkpoint)

    def save_maps(entries, recon, image) -> None:
        maps = anomaly_maps(recon, image, loss=spec["loss"], sigma=spec["smooth_sigma"], stats=stats)
        for e, m in zip(entries, maps, strict=True):
            full = F.interpolate(
                m[None, None], size=(e.height, e.width), mode="bilinear", align_corners=False
            )
            write_anomaly_map(config.output, e.name, full[0, 0].cpu().numpy())

    entries, scores = score_splits(
        model,
        manifest,
        config.splits,
        image_size=spec["image_size"],
        normalize=False,
        device=device,
        batch_size=config.batch_size,
        score_fn=make_score_fn(spec["loss"], spec["smooth_sigma"], spec["reduction"], stats),
        on_batch=save_maps if config.save_maps else None,
    )
    threshold = float(ckpt["threshold"])
    meta = prediction_meta(
        "AutoEncoder" + ("" if spec["loss"] == "l2" else f" ({spec['loss']})"),
        KIND,
        config,
        ckpt,
        split_path,
        f"{spec['reduction']} of the smoothed reconstruction-error map"
        + (", each pixel standardised by good images' errors there" if stats is not None else ""),
    )
    warn_if_other_split(ckpt, manifest.fingerprint, split_path)
    return write_predictions(config.output, entries, scores, threshold, meta)
