"""Writing the prediction-folder contract (:mod:`defectkit.predictions`) for image-level models:
``image_scores.csv`` (image,split,defect_type,label,score,pred), ``prediction_meta.json`` and,
for the AutoEncoder, ``anomaly_maps/<name>.npy`` (float32 HxW at the image's original size).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectkit.datasets.split import SplitEntry
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
