"""Prediction of the image-level models on a split manifest: :func:`predict_classifier` and
:func:`predict_autoencoder` write the prediction-folder contract (:mod:`defectkit.predictions`):
``image_scores.csv`` (image,split,defect_type,label,score,pred), ``prediction_meta.json`` and,
for the AutoEncoder, ``anomaly_maps/<name>.npy`` (float32 HxW at the image's original size).
A folder of unlabelled images (``--images``) is scored by :mod:`.folder_predict`.

Classifier image score = 1 - p(good); AutoEncoder = the reduction of its smoothed
reconstruction-error map (:mod:`.model`). No torch at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectkit.datasets.split import SplitEntry
from defectkit.errors import InputError
from defectkit.finetune.image.config import ImagePredictConfig
from defectkit.predictions import (  # noqa: F401  (write_anomaly_map: re-exported)
    PRED_COLUMN,
    SCORE_COLUMNS,
    ScoreRow,
    format_image_scores,
    write_anomaly_map,
    write_prediction_folder,
)
from defectkit.progress import progress

SCORE_COLUMNS = (*SCORE_COLUMNS, PRED_COLUMN)


log = logging.getLogger(__name__)


def warn_if_other_split(ckpt: dict, fingerprint: str, split_path: str | os.PathLike) -> bool:
    """Warn (and return True) when the split manifest at ``split_path`` lists other data than the
    one the checkpoint was trained with: its ``fingerprint`` (over the listed files and their
    contents) differs. Predicting on it is allowed (new images, another category); a split of the
    same files with other assignments has the same fingerprint."""
    if ckpt.get("split_fingerprint") == fingerprint:
        return False
    log.warning("%s: not the manifest the model was trained with (fingerprint differs)", split_path)
    return True


def format_scores_csv(entries: Sequence[SplitEntry], scores: Sequence[float], threshold: float) -> str:
    """CSV text, one row per entry sorted by name; pred = 1 when the written score >= threshold
    (:func:`defectkit.predictions.format_image_scores`)."""
    if len(entries) != len(scores):
        raise ValueError(f"{len(entries)} entries but {len(scores)} scores")
    return format_image_scores([ScoreRow.of(e, s) for e, s in zip(entries, scores, strict=True)], threshold=threshold)


def prediction_meta(
    model_name: str, kind: str, config: Any, ckpt: dict[str, Any], split_path: str | os.PathLike, score: str
) -> dict[str, Any]:
    """``prediction_meta.json`` of an image-level model: display name, kind, weights, splits, and
    the predict config with the checkpoint's threshold, epoch, model spec and training config.
    ``config``: the ``ImagePredictConfig``; ``score``: how the image score is made, in words."""
    from defectkit.runtime import config_to_dict

    return {
        "model": model_name,
        "kind": kind,
        "weights": str(Path(config.weights).resolve()),
        "splits": list(config.splits),
        "config": {
            **config_to_dict(config),
            "split": str(split_path),
            "threshold": float(ckpt["threshold"]),
            "threshold_method": ckpt["threshold_method"],
            "epoch": ckpt["epoch"],
            "score": score,
            "model_spec": ckpt["model_spec"],
            "train_config": ckpt["config"],
        },
    }


def write_predictions(
    out_dir: str | os.PathLike,
    entries: Sequence[SplitEntry],
    scores: Sequence[float],
    threshold: float,
    meta: dict[str, Any],
) -> Path:
    """Write ``image_scores.csv`` and ``prediction_meta.json`` into ``out_dir`` (atomically); the
    folder is marked incomplete until both are written (eval refuses a marked folder)."""
    return write_prediction_folder(out_dir, meta, scores=format_scores_csv(entries, scores, threshold))


def score_splits(
    model,
    manifest,
    splits: Sequence[str],
    *,
    image_size: int,
    normalize: bool,
    device,
    batch_size: int,
    score_fn,
    on_batch=None,
) -> tuple[list[SplitEntry], list[float]]:
    """Image scores of every entry of ``splits`` (eval mode, no augmentation), in manifest order.

    ``score_fn(outputs, inputs) -> N`` tensor; ``on_batch(entries, outputs, inputs)`` is called per
    batch (the AutoEncoder writes its anomaly maps there).
    """
    import torch

    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.data import make_loader

    model.eval()
    entries: list[SplitEntry] = []
    scores: list[float] = []
    for split in splits:
        ds = ManifestDataset(manifest, split, image_size=image_size, normalize=normalize, cache=False)
        with torch.no_grad():
            loader = make_loader(ds, batch_size)
            for batch in progress(loader, desc=f"predict {split}", total=len(loader)):
                x = batch["image"].to(device)
                out = model(x)
                batch_entries = [ds.entries[int(i)] for i in batch["index"]]
                if on_batch is not None:
                    on_batch(batch_entries, out, x)
                entries += batch_entries
                scores += score_fn(out, x).float().cpu().tolist()
    return entries, scores


def display_name(spec: dict[str, Any], config: dict[str, Any]) -> str:
    """The classifier's name in reports: "ResNet18 (focal, dropout 0.2)" from its model spec and train config."""
    arch = spec["arch"].replace("resnet", "ResNet")
    extras = [config.get("loss", "ce")]
    if config.get("dropout"):
        extras.append(f"dropout {config['dropout']:g}")
    if config.get("weight_decay"):
        extras.append(f"wd {config['weight_decay']:g}")
    return f"{arch} ({', '.join(extras)})"


def predict_classifier(config: ImagePredictConfig) -> Path:
    """Score the requested splits and write image_scores.csv + prediction_meta.json."""
    from defectkit.finetune.image.data import load_manifest
    from defectkit.finetune.image.model import CLASSIFIER_KIND, defect_score, load_classifier
    from defectkit.runtime import resolve_device

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
    meta = prediction_meta(display_name(spec, ckpt["config"]), CLASSIFIER_KIND, config, ckpt, split_path, "1 - p(good)")
    warn_if_other_split(ckpt, manifest.fingerprint, split_path)
    return write_predictions(config.output, entries, scores, threshold, meta)


def predict_autoencoder(config: ImagePredictConfig) -> Path:
    """Write image_scores.csv, prediction_meta.json and (``save_maps``) anomaly_maps/<name>.npy
    (float32 HxW at each image's original size, bilinear from the model's resolution)."""
    import torch.nn.functional as F

    from defectkit.fileio import ensure_dir, mark_incomplete
    from defectkit.finetune.image.data import load_manifest
    from defectkit.finetune.image.model import AUTOENCODER_KIND, anomaly_maps, load_autoencoder, make_score_fn
    from defectkit.runtime import resolve_device

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
        AUTOENCODER_KIND,
        config,
        ckpt,
        split_path,
        f"{spec['reduction']} of the smoothed reconstruction-error map"
        + (", each pixel standardised by good images' errors there" if stats is not None else ""),
    )
    warn_if_other_split(ckpt, manifest.fingerprint, split_path)
    return write_predictions(config.output, entries, scores, threshold, meta)
