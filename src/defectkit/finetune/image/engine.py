"""Training engine of the image-level models, in the shape of torchvision's references/detection:
``train_one_epoch`` and ``evaluate`` take every dependency as an argument; ``fit`` runs the epochs,
writes metrics.csv, last.pt and best.pt (atomic), early-stops on val and supports exact resume.

Only rank 0 evaluates and writes files when run under torchrun (see :mod:`.dist`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from defectkit.errors import DefectkitError
from defectkit.fileio import atomic_write_text
from defectkit.finetune.image.dist import DistInfo, all_reduce_sum, broadcast_object, unwrap
from defectkit.finetune.image.metrics import val_metrics
from defectkit.progress import progress
from defectkit.runtime import library_versions, rng_state, save_checkpoint, set_rng_state

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "defectkit-image/1"
METRIC_COLUMNS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_accuracy", "val_f1", "val_auroc", "threshold")

#: ``score_fn(outputs, inputs) -> N`` image scores (higher = more defective)
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NonFiniteLossError(DefectkitError):
    """The training loss became NaN or infinite."""


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader,
    device: torch.device,
    epoch: int,
    *,
    target_key: str = "target",
    desc: str | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss per image (summed over ranks).

    ``desc``: progress-bar label (the fit loop puts the last val metric there).

    Batches are dicts with ``image`` Nx3xHxW float; the loss target is ``batch[target_key]``, or
    the input itself when ``target_key == "image"`` (AutoEncoder). A NaN/inf loss raises
    NonFiniteLossError before the optimiser step, so the weights stay finite.
    """
    model.train()
    total = torch.zeros(2, dtype=torch.float64)
    bar = progress(loader, desc=desc or f"epoch {epoch}", total=len(loader))
    for step, batch in enumerate(bar):
        x = batch["image"].to(device, non_blocking=True)
        y = x if target_key == "image" else batch[target_key].to(device, non_blocking=True)
        loss = criterion(model(x), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"epoch {epoch}, step {step}: the training loss is {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total[0].item() / total[1].item():.4f}")
    total = all_reduce_sum(total)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader, device: torch.device) -> None:
    """Recompute every BatchNorm's running mean/var as the exact average over ``loader`` for the
    current weights ("precise BN"). With few steps per epoch the momentum estimates lag the
    weights, and eval-mode outputs (val, test, predict) drift from train-mode ones."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for batch in loader:
        model(batch["image"].to(device, non_blocking=True))
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum


@dataclass
class EvalResult:
    """Mean loss and per-image scores/labels of one split, in loader order (N float / N int)."""

    loss: float
    scores: np.ndarray
    labels: np.ndarray


@torch.no_grad()
def evaluate(
    model: nn.Module,
    criterion: nn.Module,
    loader,
    device: torch.device,
    score_fn: ScoreFn,
    *,
    target_key: str = "target",
) -> EvalResult:
    """Loss and image scores over ``loader`` (no augmentation, eval mode, no gradients)."""
    model.eval()
    loss_sum, n, scores, labels = 0.0, 0, [], []
    for batch in loader:
        x = batch["image"].to(device)
        y = x if target_key == "image" else batch[target_key].to(device)
        out = model(x)
        loss_sum += criterion(out, y).item() * len(x)
        n += len(x)
        scores.append(score_fn(out, x).float().cpu())
        labels.append(batch["label"])
    if n == 0:
        return EvalResult(math.nan, np.zeros(0), np.zeros(0, dtype=np.int64))
    return EvalResult(loss_sum / n, torch.cat(scores).numpy().astype(np.float64), torch.cat(labels).numpy())


@dataclass
class FitSetup:
    """Everything ``fit`` needs. ``threshold_fn(scores, labels) -> float`` gives the per-epoch
    threshold for val accuracy/F1; ``before_epoch(epoch)`` re-seeds samplers/augmentation and
    freezes/unfreezes layers; ``meta`` is stored in every checkpoint (model spec, config, ...).
    ``select``: "loss" (lower is better), "f1" or "auroc" (higher is better; AUROC falls back to
    the loss while val holds one class only). ``recalibrate_bn``: precise BatchNorm statistics
    over the train loader after every epoch (see recalibrate_batchnorm).
    """

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: Any
    val_loader: Any | None
    device: torch.device
    epochs: int
    run_dir: Path
    score_fn: ScoreFn
    threshold_fn: Callable[[np.ndarray, np.ndarray], float]
    select: str = "loss"
    patience: int = 0
    recalibrate_bn: bool = False
    target_key: str = "target"
    before_epoch: Callable[[int], None] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    dist: DistInfo = field(default_factory=DistInfo)


@dataclass
class FitState:
    """Progress that a checkpoint carries so that a resumed run continues exactly."""

    epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _selection_value(row: dict[str, Any], select: str) -> tuple[float, str]:
    """(value where lower is better, name used)."""
    if select == "f1" and not math.isnan(row["val_f1"]):
        return -row["val_f1"], "val_f1"
    if select == "auroc" and not math.isnan(row["val_auroc"]):
        return -row["val_auroc"], "val_auroc"
    if not math.isnan(row["val_loss"]):
        return row["val_loss"], "val_loss"
    return row["train_loss"], "train_loss"


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow(
            {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in METRIC_COLUMNS}
        )
    atomic_write_text(path, buf.getvalue())


def checkpoint_dict(setup: FitSetup, state: FitState) -> dict[str, Any]:
    """Model (unwrapped from DDP), optimiser, scheduler, epoch, RNG state, fit state and ``meta``."""
    return {
        "format": CHECKPOINT_FORMAT,
        **setup.meta,
        "model": unwrap(setup.model).state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "scheduler": setup.scheduler.state_dict() if setup.scheduler is not None else None,
        "epoch": state.epoch,
        "fit_state": {k: v for k, v in vars(state).items() if k != "epoch"},
        "rng": rng_state(),
        "versions": library_versions(),
    }


def restore_fit_state(setup: FitSetup, ckpt: dict[str, Any]) -> FitState:
    """Load optimiser/scheduler/RNG from a ``last.pt`` dict (the model is loaded by the caller)."""
    setup.optimizer.load_state_dict(ckpt["optimizer"])
    if setup.scheduler is not None and ckpt.get("scheduler") is not None:
        setup.scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return FitState(epoch=int(ckpt["epoch"]), **ckpt["fit_state"])


def _epoch_row(setup: FitSetup, epoch: int, train_loss: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": epoch,
        "step": epoch * len(setup.train_loader),
        "lr": setup.optimizer.param_groups[0]["lr"],
        "train_loss": train_loss,
    }
    if setup.val_loader is None:
        return {
            **row,
            "val_loss": math.nan,
            "val_accuracy": math.nan,
            "val_f1": math.nan,
            "val_auroc": math.nan,
            "threshold": math.nan,
        }
    ev = evaluate(
        unwrap(setup.model),
        setup.criterion,
        setup.val_loader,
        setup.device,
        setup.score_fn,
        target_key=setup.target_key,
    )
    threshold = setup.threshold_fn(ev.scores, ev.labels)
    m = val_metrics(ev.labels, ev.scores, threshold)
    return {
        **row,
        "val_loss": ev.loss,
        "val_accuracy": m["accuracy"],
        "val_f1": m["f1"],
        "val_auroc": m["auroc"],
        "threshold": threshold,
    }


def _end_of_epoch(setup: FitSetup, state: FitState, row: dict[str, Any]) -> None:
    """Rank 0: update best/patience, write best.pt (if improved), last.pt and metrics.csv."""
    value, name = _selection_value(row, setup.select)
    state.history.append(row)
    improved = state.best is None or value < state.best
    if improved:
        state.best, state.best_epoch, state.bad_epochs = value, state.epoch, 0
    else:
        state.bad_epochs += 1
    if setup.patience and state.bad_epochs >= setup.patience:
        state.stopped_early = True
    ckpt = checkpoint_dict(setup, state)
    if math.isfinite(row["threshold"]):  # the decision threshold of this epoch's weights
        ckpt["threshold"] = float(row["threshold"])
    if improved:
        save_checkpoint(ckpt, setup.run_dir / "best.pt")
    save_checkpoint(ckpt, setup.run_dir / "last.pt")
    write_metrics_csv(setup.run_dir / "metrics.csv", state.history)
    log.info(
        "epoch %d/%d: train_loss %.4f val_loss %.4f val_f1 %.3f val_auroc %.3f%s",
        state.epoch,
        setup.epochs,
        row["train_loss"],
        row["val_loss"],
        row["val_f1"],
        row["val_auroc"],
        f" (best {name})" if improved else "",
    )


def _bar_label(setup: FitSetup, state: FitState, epoch: int) -> str:
    label = f"epoch {epoch}/{setup.epochs}"
    if state.history:
        _, name = _selection_value(state.history[-1], setup.select)
        value = state.history[-1][name]
        label += f" (last {name} {value:.3f})"
    return label


def fit(setup: FitSetup, state: FitState | None = None) -> FitState:
    """Train from ``state.epoch + 1`` to ``setup.epochs`` (or until early stopping).

    On a NaN loss the run stops with a DefectkitError naming the last good checkpoint, which is
    left untouched.
    """
    state = state or FitState()
    is_main = setup.dist.rank == 0
    per_epoch = len(setup.train_loader)
    if is_main:
        log.info(
            "training %d epochs x %d steps = %d optimiser steps (batch %s)",
            setup.epochs,
            per_epoch,
            setup.epochs * per_epoch,
            getattr(setup.train_loader, "batch_size", "?"),
        )
    while state.epoch < setup.epochs and not state.stopped_early:
        epoch = state.epoch + 1
        if setup.before_epoch is not None:
            setup.before_epoch(epoch)
        t0 = time.perf_counter()
        try:
            train_loss = train_one_epoch(
                setup.model,
                setup.criterion,
                setup.optimizer,
                setup.train_loader,
                setup.device,
                epoch,
                target_key=setup.target_key,
                desc=_bar_label(setup, state, epoch),
            )
        except NonFiniteLossError as exc:
            last = setup.run_dir / "last.pt"
            kept = (
                f"the last good checkpoint {last} (epoch {state.epoch}) is kept"
                if state.epoch
                else "no checkpoint was written"
            )
            raise DefectkitError(f"{exc}; training stopped, {kept}. Try a lower --lr.") from exc
        if setup.recalibrate_bn:
            recalibrate_batchnorm(unwrap(setup.model), setup.train_loader, setup.device)
        if setup.scheduler is not None:
            setup.scheduler.step()
        state.epoch = epoch
        if is_main:
            _end_of_epoch(setup, state, _epoch_row(setup, epoch, train_loss))
            log.debug("epoch %d took %.1f s", epoch, time.perf_counter() - t0)
        state.stopped_early = bool(broadcast_object(state.stopped_early))
    if state.stopped_early and is_main:
        log.info("early stop after epoch %d (best epoch %d)", state.epoch, state.best_epoch)
    if is_main:
        log.info("trained %d optimiser steps (%d epochs)", state.epoch * per_epoch, state.epoch)
    return state
