"""SAM prediction: masks for boxes on one image (:func:`predict_masks`), and ``defectkit predict
sam`` (:func:`predict_sam`) writing a prediction folder (COCO results json with RLE masks,
image_scores.csv, prediction_meta.json) for ground-truth boxes or a detector's boxes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from defectkit.errors import InputError
from defectkit.fileio import (
    check_complete,
    read_json,
)

if TYPE_CHECKING:  # annotations only
    from segment_anything.modeling import Sam
    from torch import Tensor

log = logging.getLogger(__name__)


def predict_masks(
    sam: Sam, image: np.ndarray, boxes_xyxy: np.ndarray, *, multimask: bool = False, embedding: Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segment the objects in ``boxes_xyxy`` (Nx4 float XYXY pixels) of ``image`` (HWC uint8 RGB).

    Returns (masks NxHxW bool at the image size, predicted IoU N float32). ``embedding`` (1xCxhxw)
    skips the image encoder when the caller has it already. No gradients, model's device.
    """
    import torch

    from defectkit.finetune.sam.data import preprocess_image
    from defectkit.finetune.sam.engine import predict_from_embedding

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    h, w = image.shape[:2]
    if embedding is None:
        x, _ = preprocess_image(image, sam.image_encoder.img_size)
        with torch.no_grad():
            embedding = sam.image_encoder(x.to(next(sam.parameters()).device))
    return predict_from_embedding(sam, embedding, boxes, h, w, multimask)


@dataclass(frozen=True)
class SamPredictConfig:
    """``boxes``: "gt" (boxes of the LABELS/coco/<split>.json masks, score 1) or a COCO results
    json of a detector (``bbox`` XYWH pixels, ``score``, ``category_id``, global ``image_id``)."""

    weights: str
    split: str
    labels: str
    output: str
    model_type: str = "tiny"
    boxes: str = "gt"
    splits: tuple[str, ...] = ("val", "test")
    min_box_score: float = 0.0
    multimask: bool = False
    device: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.splits if s not in ("train", "val", "test")]
        if bad or not self.splits:
            raise ValueError(f"splits={list(self.splits)!r}: expected one or more of train, val, test")
        if not 0.0 <= self.min_box_score <= 1.0:
            raise ValueError(f"min_box_score={self.min_box_score}: must be in [0, 1]")


def _gt_boxes(labels: Path, split: str, ids_by_file: dict[str, int]) -> dict[int, list[tuple]]:
    """{global image id: [(xyxy, score 1.0, category_id)]} from LABELS/coco/<split>.json."""
    from defectkit.finetune.sam.data import ann_to_mask, mask_to_box

    path = labels / "coco" / f"{split}.json"
    check_complete(path)
    coco = read_json(path, "COCO file")
    images = {int(im["id"]): im for im in coco.get("images", [])}
    out: dict[int, list[tuple]] = {}
    for ann in sorted(coco.get("annotations", []), key=lambda a: int(a["id"])):
        im = images.get(int(ann["image_id"]))
        if im is None or im["file_name"] not in ids_by_file:
            continue
        box = mask_to_box(ann_to_mask(ann, int(im["height"]), int(im["width"])))
        if box[2] > box[0]:
            out.setdefault(ids_by_file[im["file_name"]], []).append(
                (box, 1.0, int(ann.get("category_id", 1)))
            )
    return out


def _detector_boxes(path: Path, min_score: float) -> dict[int, list[tuple]]:
    """{image id: [(xyxy, score, category_id)]} from a COCO results json (XYWH boxes)."""
    dets = read_json(path, "detections file")
    if not isinstance(dets, list):
        raise InputError(f"{path}: expected a COCO results list of {{image_id, bbox, score, category_id}}")
    out: dict[int, list[tuple]] = {}
    for i, d in enumerate(dets):
        try:
            x, y, w, h = (float(v) for v in d["bbox"])
            score, img = float(d.get("score", 1.0)), int(d["image_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: entry {i} has no usable image_id/bbox/score ({exc})") from exc
        if score >= min_score and w > 0 and h > 0:
            out.setdefault(img, []).append(
                (np.array([x, y, x + w, y + h], np.float32), score, int(d.get("category_id", 1)))
            )
    return out


def mask_to_result(mask: np.ndarray, image_id: int, category_id: int, score: float) -> dict:
    """One COCO result: compressed RLE (``counts`` as str), bbox XYWH of the mask, score."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "score": round(float(score), 6),
        "segmentation": rle,
    }


def _load_boxes(cfg: SamPredictConfig, ids_by_file: dict[str, int]) -> dict[int, list[tuple]]:
    """{global image id: [(xyxy, score, category_id)]} from GT masks or a detector's results json."""
    if cfg.boxes != "gt":
        return _detector_boxes(Path(cfg.boxes), cfg.min_box_score)
    boxes: dict[int, list[tuple]] = {}
    for split in cfg.splits:
        boxes.update(_gt_boxes(Path(cfg.labels), split, ids_by_file))
    return boxes


def _segment_image(sam, cache, path: Path, dets: list[tuple], image_id: int, multimask: bool) -> tuple[list, float]:
    """COCO results (RLE masks) for one image's boxes ``dets`` [(XYXY px, box score, category id)]
    and the image score (its best mask score, 0.0 without masks). Score of a mask = box score x
    SAM's predicted IoU clipped to [0, 1]; an empty mask is dropped."""
    import torch

    from defectkit.datasets.io import read_image
    from defectkit.finetune.sam.data import preprocess_image

    image, size, device = read_image(path), sam.image_encoder.img_size, next(sam.parameters()).device

    def encode():
        with torch.no_grad():
            return sam.image_encoder(preprocess_image(image, size)[0].to(device))[0]

    emb = (cache.get_or_encode(path, encode) if cache else encode()).unsqueeze(0).to(device)
    masks, ious = predict_masks(sam, image, np.stack([d[0] for d in dets]), multimask=multimask, embedding=emb)
    results, best = [], 0.0
    for (_, box_score, cat), m, iou in zip(dets, masks, ious, strict=True):
        if m.any():
            score = box_score * float(np.clip(iou, 0.0, 1.0))
            results.append(mask_to_result(m, image_id, cat, score))
            best = max(best, score)
    return results, best


def _meta(cfg: SamPredictConfig) -> dict:
    from defectkit.runtime import config_to_dict

    meta = {
        "model": f"SAM {cfg.model_type}" + (" (GT boxes)" if cfg.boxes == "gt" else " (detector boxes)"),
        "kind": "segmenter",
        "weights": str(cfg.weights),
        "splits": list(cfg.splits),
        "config": config_to_dict(cfg),
    }
    if cfg.boxes == "gt":  # shown in the report's notes next to the image-level columns
        meta["note"] = "image level: an oracle (ground-truth boxes exist on defect images only)"
    return meta


def predict_sam(cfg: SamPredictConfig) -> dict:
    """Write ``detections.json``, ``image_scores.csv`` and ``prediction_meta.json`` under
    ``cfg.output``; returns a summary dict. Score of a mask = box score x predicted IoU (in [0, 1]);
    image score = the image's highest mask score (0 without masks)."""
    from defectkit.datasets.split import load_split
    from defectkit.finetune.sam.cache import EmbeddingCache, encoder_fingerprint
    from defectkit.finetune.sam.model import build_sam_model
    from defectkit.predictions import (
        CONFIDENCE_FORMAT,
        ScoreRow,
        format_image_scores,
        image_ids,
        write_prediction_folder,
    )
    from defectkit.progress import progress
    from defectkit.runtime import resolve_device

    manifest = load_split(cfg.split)
    ids_by_file = image_ids(manifest.entries, key="image")
    boxes = _load_boxes(cfg, ids_by_file)
    sam = build_sam_model(cfg.model_type, cfg.weights).to(resolve_device(cfg.device)).eval()
    cache = None
    if cfg.cache_dir:
        cache = EmbeddingCache(cfg.cache_dir, model_type=cfg.model_type, encoder_hash=encoder_fingerprint(sam),
                               image_size=sam.image_encoder.img_size)
    entries = [e for e in manifest.entries if e.split in cfg.splits]
    results, rows = [], []
    for e in progress(entries, desc="sam predict", total=len(entries)):
        image_id = ids_by_file[e.image]
        found, best = [], 0.0
        if boxes.get(image_id):
            found, best = _segment_image(sam, cache, manifest.image_path(e), boxes[image_id], image_id, cfg.multimask)
        results += found
        rows.append(ScoreRow.of(e, best))
    scores = format_image_scores(rows, score_format=CONFIDENCE_FORMAT)
    out = write_prediction_folder(cfg.output, _meta(cfg), detections=results, scores=scores)
    return {"output": str(out), "images": len(rows), "masks": len(results)}
