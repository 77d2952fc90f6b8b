"""Typed configs of the image-level models (ResNet classifier, AutoEncoder) and their resolution:
dataclass defaults < ``--config FILE`` (YAML) < command-line flags.

No heavy imports here: the CLI wiring imports this module to validate flags.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from defectkit.errors import InputError
from defectkit.fileio import read_yaml

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step")
TASKS = ("binary", "defect-type")
LOSSES = ("ce", "weighted-ce", "focal")
CLASS_WEIGHTS = ("auto", "inverse", "effective-number", "none")
SAMPLERS = ("none", "balanced")
AE_LOSSES = ("l2", "ssim", "l2+ssim")
AE_REDUCTIONS = ("max", "mean", "top1", "top01")
AE_ARCHS = ("ssim-ae", "conv")

C = TypeVar("C")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


@dataclass(frozen=True)
class ImageTrainConfig:
    """Settings shared by both image-level trainers.

    split: split manifest (JSON) path; output: run folder. image_size: square side in pixels the
    images are resized to. Training length: ``steps`` optimiser steps (rounded up to whole epochs:
    epochs = ceil(steps / batches per epoch), so the same budget means the same amount of training
    on a 19-image sample and on a 209-image category), or ``epochs`` when it is > 0 (it then wins
    over ``steps``). patience: early-stopping patience in epochs on the val selection metric
    (0 = off). Augmentation (train split only): horizontal/vertical flip probabilities, rotation
    limit in degrees, colour-jitter strength (brightness/contrast/saturation +-, 0 = off).
    """

    split: str = ""
    output: str = ""
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    steps: int = 1000
    epochs: int = 0
    batch_size: int = 16
    image_size: int = 128
    scheduler: str = "none"
    step_size: int = 5
    step_gamma: float = 0.1
    patience: int = 0
    augment: bool = True
    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 10.0
    color_jitter: float = 0.1
    seed: int = 0
    device: str | None = None
    workers: int = 0

    def __post_init__(self) -> None:
        if not self.split:
            raise ValueError("split: a split manifest is required (--split split.json)")
        if not self.output:
            raise ValueError("output: a run folder is required (-o RUN)")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _positive("lr", self.lr)
        _positive("weight_decay", self.weight_decay, zero_ok=True)
        for name in ("batch_size", "image_size", "step_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "epochs"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps == 0 and self.epochs == 0:
            raise ValueError("steps: give a training length (steps > 0, or epochs > 0)")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        _positive("patience", self.patience, zero_ok=True)
        _positive("workers", self.workers, zero_ok=True)
        for name in ("hflip", "vflip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        _positive("rotate", self.rotate, zero_ok=True)
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")

    def epochs_for(self, batches_per_epoch: int) -> int:
        """Epochs to train: ``epochs`` when > 0, else ceil(steps / batches_per_epoch) (>= 1)."""
        from defectkit.runtime import epochs_for_budget

        return epochs_for_budget(self.steps, self.epochs, batches_per_epoch)


@dataclass(frozen=True)
class ClassifierConfig(ImageTrainConfig):
    """A torchvision classifier fine-tuned (or trained from scratch) for good-vs-defect.

    arch: torchvision model name (resnet18/34/50, ...); weights: "imagenet" (torch hub cache only),
    "none" (from scratch) or a state-dict file. The final layer becomes Dropout(dropout) + Linear.
    freeze_epochs: backbone frozen for the first N epochs (-1 = the whole run, 0 = never).
    task: "binary" (good/defect) or "defect-type" (good + one class per defect type).
    class_weights: "auto" = inverse for weighted-ce, none otherwise; beta: effective-number beta.
    select: val metric for best.pt and early stopping ("loss" or "f1").
    val_threshold: choose the decision threshold on val (max F1) instead of 0.5.
    precise_bn: after every epoch, recompute BatchNorm statistics over the train split for the
    current weights (keeps eval-mode scores calibrated when epochs have few steps).
    """

    # the from-scratch recipe for real images (docs/guide/image_models.md): 128 px so that a chip
    # of 1 % of the image is ~13x13 pixels, any rotation and both flips (an object seen from
    # above), and class balance by drawing good and defect images equally often (with plain CE:
    # class weights on top would count the balance twice); a budget in steps, not epochs
    image_size: int = 128
    steps: int = 1200
    batch_size: int = 16
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    vflip: float = 0.5
    rotate: float = 180.0
    color_jitter: float = 0.0
    arch: str = "resnet18"
    weights: str = "none"
    task: str = "binary"
    dropout: float = 0.0
    freeze_epochs: int = 0
    loss: str = "ce"
    class_weights: str = "auto"
    beta: float = 0.999
    focal_gamma: float = 2.0
    sampler: str = "balanced"
    select: str = "loss"
    val_threshold: bool = False
    precise_bn: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("task", self.task, TASKS)
        _choice("loss", self.loss, LOSSES)
        _choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("select", self.select, ("loss", "f1"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.freeze_epochs < -1:
            raise ValueError(f"freeze_epochs must be -1 (whole run), 0 or N > 0, got {self.freeze_epochs}")
        if not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta must be in (0, 1), got {self.beta}")
        _positive("focal_gamma", self.focal_gamma, zero_ok=True)
        if self.loss == "ce" and self.class_weights not in ("auto", "none"):
            raise ValueError(f"class_weights {self.class_weights!r} needs loss weighted-ce or focal, not ce")
        if self.loss == "weighted-ce" and self.class_weights == "none":
            raise ValueError("loss weighted-ce needs class_weights inverse or effective-number")

    @property
    def resolved_class_weights(self) -> str:
        if self.class_weights != "auto":
            return self.class_weights
        return "inverse" if self.loss == "weighted-ce" else "none"


@dataclass(frozen=True)
class AutoencoderConfig(ImageTrainConfig):
    """An AutoEncoder trained on the train split's good images only.

    arch: "ssim-ae" (the MVTec AD paper's AutoEncoder, a dense bottleneck of ``latent`` values,
    image_size a power of two) or "conv" (defectkit's earlier fully convolutional one; ``width``
    channels in the first stage, ``latent`` bottleneck channels). loss: "l2", "ssim" or "l2+ssim"
    (the anomaly map uses the same error). smooth_sigma: Gaussian sigma (pixels at image_size)
    applied to the map; reduction: image score from the map ("max", "mean", "top1" = mean of
    the top 1% pixels, "top01" = of the top 0.1%). normalize_map: after training, standardise
    each pixel of the map by the mean and std of the train-good images' errors there (stored in
    the checkpoint), so the places that are always hard to reconstruct (a bright rim) do not
    decide the score; the val threshold is then chosen on the standardised maps.
    threshold: eval's rule for the val threshold saved in the checkpoint (the ``pred`` column):
    "balanced" (default: max balanced accuracy, which does not lean on val's good/defect ratio;
    val carved from the train side is mostly good images, MVTec test sets mostly defects),
    "max-f1", "good-recall=R" or "fixed=T". good_percentile: threshold when val has no defect
    image (percentile of val-good scores; 95 = eval's good-recall=0.95 fallback).

    Defaults measured on the real MVTec AD bottle sample (docs/guide/image_models.md): 128 px
    (a chip of 1 % of the image is ~13x13 pixels), any rotation and both flips for an object
    seen from above, SSIM loss and map standardised per pixel, and the top-1 % mean as the score
    so that one bright rim pixel does not decide.
    """

    augment: bool = True
    hflip: float = 0.5
    vflip: float = 0.5
    rotate: float = 180.0
    color_jitter: float = 0.0
    lr: float = 2e-4
    weight_decay: float = 1e-5
    steps: int = 1000
    arch: str = "ssim-ae"
    width: int = 32
    latent: int = 100
    loss: str = "ssim"
    smooth_sigma: float = 2.0
    reduction: str = "top1"
    normalize_map: bool = True
    threshold: str = "balanced"
    good_percentile: float = 95.0
    select: str = "auroc"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("arch", self.arch, AE_ARCHS)
        _choice("loss", self.loss, AE_LOSSES)
        _choice("reduction", self.reduction, AE_REDUCTIONS)
        _choice("select", self.select, ("auroc", "loss"))
        if self.width < 4 or self.latent < 1:
            raise ValueError(f"width must be >= 4 and latent >= 1, got {self.width}, {self.latent}")
        if self.arch == "conv" and self.image_size % 16:
            raise ValueError(
                f"image_size must be a multiple of 16 for the conv AutoEncoder, got {self.image_size}"
            )
        if self.arch == "ssim-ae" and (self.image_size < 32 or self.image_size & (self.image_size - 1)):
            raise ValueError(
                f"image_size must be a power of two >= 32 for the ssim-ae AutoEncoder, got {self.image_size}"
            )
        _positive("smooth_sigma", self.smooth_sigma, zero_ok=True)
        if not 0.0 < self.good_percentile <= 100.0:
            raise ValueError(f"good_percentile must be in (0, 100], got {self.good_percentile}")
        from defectkit.eval.thresholds import parse_threshold_rule

        try:
            parse_threshold_rule(self.threshold)
        except ValueError as exc:
            raise ValueError(f"threshold {self.threshold!r}: {exc} (use balanced, max-f1, good-recall=R or fixed=T)") from None


@dataclass(frozen=True)
class ImagePredictConfig:
    """``defectkit predict classifier|autoencoder``: weights file, manifest, output folder.

    split: manifest path ("" = the one recorded in the checkpoint); splits: which of its splits
    to score; save_maps: write AutoEncoder anomaly maps (.npy) too.
    """

    weights: str = ""
    output: str = ""
    split: str = ""
    splits: tuple[str, ...] = ("val", "test")
    batch_size: int = 16
    device: str | None = None
    save_maps: bool = True

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("weights: a checkpoint is required (--weights RUN/best.pt)")
        if not self.output:
            raise ValueError("output: a prediction folder is required (-o PRED_DIR)")
        if not self.splits:
            raise ValueError("splits: at least one split is required")
        for s in self.splits:
            _choice("splits", s, ("train", "val", "test"))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _coerce(name: str, value: Any, hint: Any, where: str) -> Any:
    """Turn a YAML/argparse value into the field's declared type (YAML reads ``1e-3`` as str)."""
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if name == "freeze_epochs" and value == "all":
        return -1
    if target is tuple or typing.get_origin(target) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(x).strip() for x in items)
    if isinstance(value, bool) and target in (int, float):
        raise InputError(f"{where}: {name}: expected a number, got {str(value).lower()}")
    try:
        if target is bool:
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError(f"expected true/false, got {value!r}")
            return value
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if target is float:
            return float(value)
        return str(value) if not isinstance(value, os.PathLike) else os.fspath(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {name}: {exc}") from exc


def load_config_file(path: str | os.PathLike, cls: type, model: str) -> dict[str, Any]:
    """Read a YAML config file into a dict of ``cls`` fields (keys may use '-' or '_').

    An optional top-level ``model:`` key must equal ``model``. Unknown keys are an InputError
    naming the file and the key.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    raw = read_yaml(p, "config file") or {}
    if not isinstance(raw, dict):
        raise InputError(f"{p}: a config file must be a mapping of option: value")
    data = {str(k).replace("-", "_"): v for k, v in raw.items()}
    file_model = data.pop("model", model)
    if file_model != model:
        raise InputError(f"{p}: this config is for model {file_model!r}, not {model!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{p}: unknown option(s) {', '.join(unknown)} for {model}")
    return data


def resolve_config(cls: type[C], *layers: tuple[str, dict[str, Any]]) -> C:
    """Build ``cls`` from dataclass defaults updated by each ``(where, values)`` layer in order.

    ``where`` names the source (a file, "command line") in error messages. ValueErrors from
    validation become InputErrors that name the offending option.
    """
    hints = typing.get_type_hints(cls)
    merged: dict[str, Any] = {}
    where_of: dict[str, str] = {}
    for where, values in layers:
        for k, v in values.items():
            if k not in hints:
                raise InputError(f"{where}: unknown option {k!r}")
            merged[k] = _coerce(k, v, hints[k], where)
            where_of[k] = where
    try:
        return cls(**merged)
    except ValueError as exc:
        name = str(exc).split(":")[0].split(" ")[0]
        src = where_of.get(name, "config")
        flag = "--" + name.replace("_", "-")
        raise InputError(f"{src}: {flag}: {exc}") from exc
