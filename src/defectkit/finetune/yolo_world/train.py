"""Fine-tune YOLO-World (or train a closed-set ultralytics detector) on a ``defectkit convert`` YOLO folder.

``finetune_yolo(YoloFinetuneConfig(...))`` writes everything under ``config.output`` (RUN_DIR)::

    RUN_DIR/config.json        resolved defectkit config + library versions + text embeddings info
    RUN_DIR/args.yaml          ultralytics' resolved training arguments
    RUN_DIR/weights/best.pt    ultralytics checkpoint (WorldModel keeps names + txt_feats [1, nc, 512])
    RUN_DIR/weights/last.pt
    RUN_DIR/results.csv        ultralytics' per-epoch metrics; RUN_DIR/metrics.csv the same, atomically
    RUN_DIR/*.png / *.jpg      ultralytics plots (``--set plots=False`` turns them off)

``resume_yolo(run_dir)`` continues a killed run from ``RUN_DIR/weights/last.pt``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectkit.errors import DefectkitError, InputError, MissingWeightsError
from defectkit.fileio import check_complete, read_json, read_yaml, sha256_file
from defectkit.finetune.yolo_world.config import (  # noqa: F401  (re-exported: the old module's names)
    RESERVED_ARGS,
    YoloFinetuneConfig,
    _check_text_matches,
    is_world_model,
    parse_set_overrides,
)
from defectkit.predictions import checkpoint_is_world  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YoloTrainResult:
    run_dir: Path
    best: Path
    last: Path
    metrics: dict[str, float]
    seconds: float


def _check_inputs(config: YoloFinetuneConfig) -> None:
    if not Path(config.data).is_file():
        raise InputError(
            f"{config.data}: data.yaml not found (make it with `defectkit convert ... --to yolo`)"
        )
    check_complete(config.data)
    if not isinstance(read_yaml(config.data, "YOLO data.yaml"), dict):  # before ultralytics reads it
        raise InputError(f"{config.data}: not a YOLO data.yaml (a mapping with train, val and names)")
    if Path(config.model).suffix.lower() == ".pt" and not Path(config.model).is_file():
        raise MissingWeightsError(
            f"{config.model}: weights file not found (defectkit never downloads weights implicitly: "
            "`defectkit weights fetch NAME` brings an official one, e.g. yolov8s-worldv2; or pass a .yaml "
            "config to train from scratch)"
        )
    _check_train_has_labels(Path(config.data))


def train_image_dir(data_yaml: Path) -> Path | None:
    """The folder of the training images a data.yaml names; None when `train` is not one folder (a
    list, a .txt image list), has no ``images`` part or does not exist, and when `path` is relative
    (ultralytics resolves that against its own datasets folder)."""
    import yaml

    try:
        data = yaml.safe_load(Path(data_yaml).read_text(encoding="utf-8"))
        train = data["train"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):  # ValueError: not UTF-8
        return None  # _dataset_names / ultralytics report a broken data.yaml
    root = Path(data.get("path") or Path(data_yaml).resolve().parent)
    if not isinstance(train, str) or not root.is_absolute():
        return None
    images = Path(train) if Path(train).is_absolute() else root / train
    if "images" not in images.parts or not images.is_dir():
        return None
    return images


def train_label_dir(data_yaml: Path) -> Path | None:
    """The folder of the training labels a data.yaml names, by ultralytics' rule (``.../images/...`` ->
    ``.../labels/...``); None where ``train_image_dir`` is None."""
    images = train_image_dir(data_yaml)
    if images is None:
        return None
    parts = images.parts
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1 :])


def resolve_epochs(config: YoloFinetuneConfig) -> int:
    """ultralytics' ``epochs`` for ``config``: ``epochs`` when > 0, else ``steps`` optimiser steps
    over the training images (ceil(n / batch) per epoch) rounded up to whole epochs. InputError
    when only a step budget is given and the training images cannot be counted."""
    from defectkit.datasets.io import IMAGE_EXTENSIONS
    from defectkit.runtime import epochs_for_budget

    if config.epochs > 0:
        return config.epochs
    images = train_image_dir(config.data)
    if images is None or config.batch < 1:
        raise InputError(
            f"{config.data}: cannot count the training images to turn --steps {config.steps} into "
            "epochs (train is not one images/ folder, or --batch is -1); give --epochs N"
        )
    n = sum(1 for f in images.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    return epochs_for_budget(config.steps, 0, math.ceil(max(1, n) / config.batch))


def _check_train_has_labels(data_yaml: Path) -> None:
    """InputError when no training image has a box: a detector would learn only background."""
    labels = train_label_dir(data_yaml)
    if labels is None:
        return
    files = labels.glob("*.txt") if labels.is_dir() else ()
    if not any(f.stat().st_size and f.read_text(encoding="utf-8", errors="replace").strip() for f in files):
        what = "holds no boxes" if labels.is_dir() else "not found"
        raise InputError(
            f"{data_yaml}: no training image has a labelled defect ({labels}: {what}); "
            "`defectkit split` puts defect images in train only with --defects-to-train K (K >= 1)"
        )


def _dataset_names(data_yaml: Path) -> list[str]:
    data = read_yaml(data_yaml, "YOLO data.yaml")
    try:
        names = data["names"]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{data_yaml}: not a YOLO data.yaml with `names` ({exc})") from exc
    return [str(v) for _, v in sorted(names.items())] if isinstance(names, dict) else [str(v) for v in names]


def _load_bank(config: YoloFinetuneConfig):
    from defectkit.finetune.yolo_world.text_embeddings import EMBED_DIM, load_text_embeddings, split_synonyms

    bank = load_text_embeddings(config.text_embeddings)
    if bank.dim != EMBED_DIM:
        raise InputError(f"{config.text_embeddings}: {bank.dim}-d embeddings; YOLO-World needs {EMBED_DIM}-d")
    bank.features_for(split_synonyms(_dataset_names(config.data)), source=str(config.text_embeddings))
    return bank


def _ultralytics_args(config: YoloFinetuneConfig) -> dict[str, Any]:
    out = Path(config.output).resolve()
    args = {
        "model": str(config.model),
        "data": str(Path(config.data).resolve()),
        "epochs": resolve_epochs(config),
        "imgsz": config.imgsz,
        "batch": config.batch,
        "workers": config.workers,
        "seed": config.seed,
        "deterministic": True,
        "project": str(out.parent),
        "name": out.name,
        "exist_ok": True,
        "verbose": False,
    }
    if config.device is not None:
        args["device"] = config.device
    args.update(config.overrides)
    return args


def _run_record(config: YoloFinetuneConfig, bank: Any) -> dict[str, Any]:
    from defectkit.runtime import config_to_dict

    rec = {**config_to_dict(config), "overrides": dict(config.overrides)}
    if bank is not None:
        rec["text_embeddings_info"] = {
            "names": list(bank.names),
            "model": bank.model,
            "weights_sha256": bank.weights_sha256,
            "file_sha256": sha256_file(config.text_embeddings),
        }
    return rec


def _train(trainer: Any, run_dir: Path, t0: float) -> YoloTrainResult:
    from defectkit.finetune.yolo_world.trainer import ultralytics_progress
    from defectkit.progress import progress_enabled

    try:
        with ultralytics_progress(progress_enabled()):
            trainer.train()
    except (InputError, KeyboardInterrupt):
        raise
    except (FileNotFoundError, SyntaxError, KeyError) as exc:  # ultralytics' errors for bad data/config
        raise InputError(f"ultralytics could not train: {type(exc).__name__}: {exc}") from exc
    except RuntimeError as exc:
        raise DefectkitError(f"training failed: {exc}") from exc
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    return YoloTrainResult(run_dir, best, Path(trainer.last), metrics, time.perf_counter() - t0)


def _add_callbacks(trainer: Any, callbacks: Mapping[str, Any] | None) -> Any:
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    return trainer


def finetune_yolo(
    config: YoloFinetuneConfig, *, callbacks: Mapping[str, list] | None = None
) -> YoloTrainResult:
    """Train as configured; every output lands in ``config.output``. See the module docstring.

    ``callbacks``: extra ultralytics callbacks ``{event: [fn(trainer), ...]}`` (e.g. progress reporting).
    """
    from defectkit.devices import check_device
    from defectkit.finetune.yolo_world.env import import_ultralytics
    from defectkit.runtime import prepare_run_dir
    from defectkit.weights.registry import resolve_weights

    check_device(config.device)
    config = dataclasses.replace(config, model=resolve_weights(config.model, "--model"))
    _check_inputs(config)
    if Path(config.model).suffix.lower() == ".pt":
        try:
            world = checkpoint_is_world(config.model)
            _check_text_matches(config.model, world, config.text_embeddings is not None)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    bank = _load_bank(config) if config.text_embeddings is not None else None
    run_dir = Path(config.output).resolve()
    if (run_dir / "weights" / "last.pt").exists():
        raise InputError(
            f"{run_dir}: already holds a run (continue it with --resume {run_dir}, or pick a new -o)"
        )
    prepare_run_dir(run_dir, _run_record(config, bank))
    import_ultralytics()
    from defectkit.finetune.yolo_world.trainer import OfflineDetectionTrainer, TextFileWorldTrainer

    t0 = time.perf_counter()
    args = _ultralytics_args(config)
    log.info(
        "training %d epochs (%s)",
        args["epochs"],
        f"--epochs {config.epochs}" if config.epochs > 0 else f"--steps {config.steps} at batch {config.batch}",
    )
    try:
        if bank is not None:
            trainer = TextFileWorldTrainer(
                overrides=args,
                text_embeddings=bank,
                text_embeddings_source=str(config.text_embeddings),
                transpose=config.transpose,
            )
        else:
            trainer = OfflineDetectionTrainer(overrides=args, transpose=config.transpose)
    except (SyntaxError, KeyError, FileNotFoundError) as exc:  # ultralytics' bad-argument / bad-data errors
        raise InputError(f"bad ultralytics argument or data: {exc}") from exc
    return _train(_add_callbacks(trainer, callbacks), run_dir, t0)


def resume_yolo(
    run_dir: str | os.PathLike, *, device: str | None = None, callbacks: Mapping[str, list] | None = None
) -> YoloTrainResult:
    """Continue the killed run in ``run_dir`` from its ``weights/last.pt`` (same config, same data)."""
    import torch

    from defectkit.devices import check_device
    from defectkit.finetune.yolo_world.env import import_ultralytics

    check_device(device)
    run_dir = Path(run_dir).resolve()
    last = run_dir / "weights" / "last.pt"
    record = read_json(run_dir / "config.json", "run config")["config"]
    if not last.is_file():
        raise InputError(f"{last}: not found; nothing to resume in {run_dir}")
    import_ultralytics()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    if ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:
        raise InputError(f"{run_dir}: this run finished; start a new run (-o NEW_DIR) to train more")
    from defectkit.finetune.yolo_world.trainer import OfflineDetectionTrainer, TextFileWorldTrainer

    transpose = float(record.get("transpose", 0.0))
    overrides: dict[str, Any] = {"resume": str(last)}
    if device is not None:
        overrides["device"] = device
    t0 = time.perf_counter()
    if record.get("text_embeddings"):
        cfg = YoloFinetuneConfig(
            data=Path(record["data"]),
            model=record["model"],
            output=run_dir,
            text_embeddings=Path(record["text_embeddings"]),
        )
        bank = _load_bank(cfg)
        trainer = TextFileWorldTrainer(
            overrides=overrides,
            text_embeddings=bank,
            text_embeddings_source=str(cfg.text_embeddings),
            transpose=transpose,
        )
    else:
        trainer = OfflineDetectionTrainer(overrides=overrides, transpose=transpose)
    log.info("resuming %s from epoch %d", run_dir, int(ckpt["epoch"]) + 2)
    return _train(_add_callbacks(trainer, callbacks), run_dir, t0)
