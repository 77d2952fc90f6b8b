"""Train and run the image-level classifier (torchvision ResNet & co.) on a split manifest.

``train_classifier(ClassifierConfig)`` writes RUN/config.json, metrics.csv, last.pt, best.pt and
train.log; ``predict_classifier(ImagePredictConfig)`` writes the image-level prediction folder.
Image score = 1 - p(good) (= p(defect) for the binary task).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectkit.errors import InputError
from defectkit.finetune.image.config import ClassifierConfig, ImagePredictConfig
from defectkit.runtime import config_to_dict, prepare_run_dir, resolve_device, seed_everything

log = logging.getLogger(__name__)

KIND = "classifier"
FIXED_THRESHOLD = 0.5


def defect_score(logits: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """NxC logits (class 0 = good) -> N scores 1 - p(good) in [0, 1]."""
    return 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]


def display_name(spec: dict[str, Any], config: dict[str, Any]) -> str:
    arch = spec["arch"].replace("resnet", "ResNet")
    extras = [config.get("loss", "ce")]
    if config.get("dropout"):
        extras.append(f"dropout {config['dropout']:g}")
    if config.get("weight_decay"):
        extras.append(f"wd {config['weight_decay']:g}")
    return f"{arch} ({', '.join(extras)})"


def _threshold_fn(config: ClassifierConfig):
    from defectkit.finetune.image.metrics import val_threshold

    def fn(scores: np.ndarray, labels: np.ndarray) -> float:
        if config.val_threshold and (labels == 1).any() and (labels == 0).any():
            return val_threshold(labels, scores)
        return FIXED_THRESHOLD

    return fn


def _datasets(config: ClassifierConfig, manifest, names: tuple[str, ...]):
    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.augment import train_augment

    classes = names[1:] if config.task == "defect-type" else None
    augment = train_augment(config)
    kw = dict(image_size=config.image_size, normalize=True, classes=classes)
    train = ManifestDataset(manifest, "train", transform=augment, **kw)
    val = ManifestDataset(manifest, "val", **kw)
    return train, val, augment


def _meta(config: ClassifierConfig, manifest, names: tuple[str, ...]) -> dict[str, Any]:
    """What every checkpoint carries besides weights and optimiser state."""
    return {
        "kind": KIND,
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


def _fit_setup(config: ClassifierConfig, manifest, names, counts, dinfo, device):
    """Model, data, loss, optimiser and per-epoch hooks wired into a FitSetup: (setup, bare model)."""
    from defectkit.finetune.image.classifier_model import build_classifier, head_name, set_backbone_trainable
    from defectkit.finetune.image.data import EpochSampler, balanced_weights, make_loader
    from defectkit.finetune.image.dist import wrap_ddp
    from defectkit.finetune.image.engine import FitSetup
    from defectkit.finetune.image.losses import build_classification_loss
    from defectkit.finetune.image.runs import build_optimizer, build_scheduler

    model = build_classifier(config.arch, len(names), weights=config.weights, dropout=config.dropout)
    head = head_name(model).rsplit(".", 1)[0]  # the Sequential that holds Dropout + Linear
    model.to(device)
    train_ds, val_ds, augment = _datasets(config, manifest, names)
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
        meta=_meta(config, manifest, names),
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
        setup, model = _fit_setup(config, manifest, names, counts, dinfo, device)
        ckpt = open_run(run_dir, KIND, setup.epochs, resume, exist_ok)
        if dinfo.rank == 0:
            prepare_run_dir(run_dir, config)
        barrier()
        state = resume_state(setup, model, ckpt)
        with run_log(run_dir, dinfo.rank == 0):
            fit(setup, state)
        barrier()
    return run_dir


def load_classifier(weights: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained classifier from a defectkit checkpoint; returns (model in eval mode, checkpoint)."""
    from defectkit.finetune.image.classifier_model import build_classifier
    from defectkit.finetune.image.runs import load_image_checkpoint

    ckpt = load_image_checkpoint(weights, KIND)
    spec = ckpt["model_spec"]
    model = build_classifier(spec["arch"], spec["num_classes"], weights="none", dropout=spec["dropout"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def predict_classifier(config: ImagePredictConfig) -> Path:
    """Score the requested splits and write image_scores.csv + prediction_meta.json."""
    from defectkit.finetune.image.data import load_manifest
    from defectkit.finetune.image.predict import (
        prediction_meta,
        score_splits,
        warn_if_other_split,
        write_predictions,
    )

    model, ckpt = load_classifier(config.weights)
    spec = ckpt["model_spec"]
    split_path = config.split or ckpt["config"]["split"]
    manifest = load_manifest(split_path)
    if spec["task"] == "defect-type" and tuple(spec["classes"][1:]) != manifest.defect_types:
        raise InputError(
            f"{split_path}: defect types {list(manifest.defect_types)} differ from the "
            f"model's classes {spec['classes'][1:]} ({config.weights})"
        )
    device = resolve_device(config.device)
    model.to(device)
    entries, scores = score_splits(
        model,
        manifest,
        config.splits,
        image_size=spec["image_size"],
        normalize=spec["normalize"],
        device=device,
        batch_size=config.batch_size,
        score_fn=defect_score,
    )
    threshold = float(ckpt["threshold"])
    meta = prediction_meta(display_name(spec, ckpt["config"]), KIND, config, ckpt, split_path, "1 - p(good)")
    warn_if_other_split(ckpt, manifest.fingerprint, split_path)
    return write_predictions(config.output, entries, scores, threshold, meta)
