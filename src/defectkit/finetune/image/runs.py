"""Factories and run-folder helpers shared by the classifier and AutoEncoder trainers:
optimiser/scheduler from a config, the per-run log file, reading a run back for ``--resume``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from defectkit.errors import InputError
from defectkit.fileio import read_json
from defectkit.finetune.image.config import ImageTrainConfig
from defectkit.runtime import load_checkpoint

log = logging.getLogger(__name__)


def build_optimizer(params: Iterable[torch.nn.Parameter], config: ImageTrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum, Nesterov off) with ``config.lr`` and ``config.weight_decay``."""
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: ImageTrainConfig, epochs: int):
    """Per-epoch LR schedule: cosine to 0 over ``epochs`` (the run's resolved length), step
    (``step_size``, ``step_gamma``) or None."""
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.step_gamma)
    return None


@contextlib.contextmanager
def run_log(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Copy defectkit's log records to ``run_dir/train.log`` (appending, so a resume continues it)."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("defectkit")
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    old_level, effective = logger.level, logger.getEffectiveLevel()
    others = [(h, h.level) for h in logger.handlers]
    if effective > logging.INFO:  # the file gets INFO; the console keeps the user's -q level
        for h, level in others:
            h.setLevel(max(level, effective))
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        for h, level in others:
            h.setLevel(level)
        handler.close()


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The resolved config a run folder was started with (``RUN/config.json``)."""
    p = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise InputError(f"--resume {run_dir}: no such run folder")
    data = read_json(p, "run config")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise InputError(f"{p}: not a defectkit run config (no 'config' mapping)")
    return data["config"]


def load_image_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """A classifier/AutoEncoder checkpoint written by defectkit; InputError for anything else."""
    from defectkit.finetune.image.engine import CHECKPOINT_FORMAT

    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a defectkit classifier/AutoEncoder checkpoint")
    if kind is not None and ckpt.get("kind") != kind:
        raise InputError(f"{path}: this is a {ckpt.get('kind')} checkpoint, not a {kind} one")
    return ckpt


def check_resumable(run_dir: Path, ckpt: dict[str, Any], epochs: int) -> None:
    """InputError when the run in ``last.pt`` has nothing left to do."""
    done = int(ckpt["epoch"])
    if ckpt["fit_state"].get("stopped_early"):
        raise InputError(f"--resume {run_dir}: the run stopped early at epoch {done}; nothing to resume")
    if done >= epochs:
        raise InputError(
            f"--resume {run_dir}: the run already finished epoch {done} of {epochs} "
            "(pass --epochs N with N > {done} to train longer)".replace("{done}", str(done))
        )


def open_run(
    run_dir: Path, kind: str, epochs: int, resume: bool, exist_ok: bool = False
) -> dict[str, Any] | None:
    """``RUN/last.pt`` when resuming (checked to have epochs left), else None. A folder that already
    holds a run is refused (as ultralytics does) unless ``exist_ok``: then it is started over."""
    if resume:
        ckpt = load_image_checkpoint(run_dir / "last.pt", kind)
        check_resumable(run_dir, ckpt, epochs)
        return ckpt
    if (run_dir / "last.pt").exists():
        if not exist_ok:
            raise InputError(
                f"{run_dir}: already holds a run (continue it with --resume {run_dir}, start it over "
                "with --exist-ok, or pick a new -o)"
            )
        log.warning("%s already holds a run: starting over (--exist-ok)", run_dir)
    return None


def resume_state(setup, model: torch.nn.Module, ckpt: dict[str, Any] | None):
    """Load ``ckpt`` (a last.pt dict) into ``model`` and ``setup``; returns the FitState or None."""
    from defectkit.finetune.image.engine import restore_fit_state

    if ckpt is None:
        return None
    model.load_state_dict(ckpt["model"])
    state = restore_fit_state(setup, ckpt)
    log.info("resuming %s after epoch %d", setup.run_dir, state.epoch)
    return state
