"""``defectkit annotate prompts``: SAM prompts (a box and sampled points per instance) derived
from COCO ground-truth masks, for people who feed other SAM tools.

Conventions in the written file: boxes XYXY in pixels with pixel-edge convention (a mask whose
rightmost column is 19 gives x1 = 20, the same as COCO's x + w); points (X, Y) at pixel centres
(column + 0.5, row + 0.5), the coordinates ``SamPredictor.predict(point_coords=...)`` expects;
point label 1 = foreground, 0 = background.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import numpy as np

from defectkit.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxPrompt:
    """One box to segment: category id (1-based, contiguous), XYXY pixel box (edge convention), score."""

    category_id: int
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class PromptsConfig:
    """n_points: foreground points per instance (the first is the point farthest from the mask
    border, the rest are sampled uniformly inside the mask). n_negative: background points sampled
    inside the box but outside the mask. seed: sampling seed (per instance: (seed, annotation id))."""

    coco: str
    output: str
    n_points: int = 1
    n_negative: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.n_points <= 64:
            raise ValueError(f"--points must be in [0, 64], got {self.n_points}")
        if not 0 <= self.n_negative <= 64:
            raise ValueError(f"--negative-points must be in [0, 64], got {self.n_negative}")


def mask_box(mask: np.ndarray) -> list[float]:
    """XYXY pixel-edge box of an HxW bool mask (``[x0, y0, x1, y1]``, x1 = last column + 1)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask has no box")
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(column, row) of the mask pixel farthest from the background (first in row-major order on ties)."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)  # so the image border counts as background
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(c), int(r)


def mask_prompt(mask: np.ndarray, n_points: int, n_negative: int, rng: np.random.Generator) -> dict:
    """Prompt for one HxW bool mask: {"box": XYXY, "points": [[x, y], ...], "point_labels": [...]}."""
    box = mask_box(mask)
    picked: list[tuple[int, int]] = []
    if n_points > 0:
        picked.append(interior_point(mask))
        ys, xs = np.nonzero(mask)
        rest = np.flatnonzero((xs != picked[0][0]) | (ys != picked[0][1]))
        take = rng.choice(rest.size, size=min(n_points - 1, rest.size), replace=False) if rest.size else []
        picked += [(int(xs[rest[i]]), int(ys[rest[i]])) for i in sorted(take)]
    labels = [1] * len(picked)
    if n_negative > 0:
        x0, y0, x1, y1 = (int(v) for v in box)
        inside = np.zeros_like(mask)
        inside[y0:y1, x0:x1] = True
        pool = inside & ~mask
        if not pool.any():  # the mask fills its box: sample anywhere outside it
            pool = ~mask
        ys, xs = np.nonzero(pool)
        take = rng.choice(xs.size, size=min(n_negative, xs.size), replace=False) if xs.size else []
        picked += [(int(xs[i]), int(ys[i])) for i in sorted(take)]
        labels += [0] * len(take)
    return {"box": box, "points": [[x + 0.5, y + 0.5] for x, y in picked], "point_labels": labels}


def build_prompts(cfg: PromptsConfig) -> dict:
    """The prompts document for every annotation of ``cfg.coco`` (images in id order)."""
    from defectkit.annotate.sources import load_ground_truth

    gt = load_ground_truth(cfg.coco)
    images = []
    n = 0
    for info in gt.images.values():
        prompts = []
        for ann in sorted(gt.coco.imgToAnns.get(info.id, []), key=lambda a: a["id"]):
            rng = np.random.default_rng([cfg.seed, int(ann["id"])])
            if ann.get("segmentation"):
                mask = gt.coco.annToMask(ann).astype(bool)
                if not mask.any():
                    log.warning("%s: annotation %s has an empty mask; skipped", cfg.coco, ann["id"])
                    continue
                prompt = mask_prompt(mask, cfg.n_points, cfg.n_negative, rng)
            else:  # box-only annotation: the box is the only prompt there is
                x, y, w, h = (float(v) for v in ann["bbox"])
                prompt = {"box": [x, y, x + w, y + h], "points": [], "point_labels": []}
            prompts.append(
                {"annotation_id": int(ann["id"]), "category_id": int(ann["category_id"]), **prompt}
            )
        n += len(prompts)
        images.append(
            {
                "id": info.id,
                "file_name": info.file_name,
                "name": info.name,
                "width": info.width,
                "height": info.height,
                "prompts": prompts,
            }
        )
    return {
        "info": {
            "coco": os.path.abspath(cfg.coco),
            "dataset": str(gt.dataset_root or ""),
            "box_format": "XYXY pixels, pixel edges (x1 = last column + 1)",
            "point_format": "(X, Y) pixels at pixel centres; label 1 foreground, 0 background",
            "config": asdict(cfg),
            "n_prompts": n,
        },
        "categories": [{"id": k, "name": v} for k, v in gt.categories.items()],
        "images": images,
    }


def write_prompts(cfg: PromptsConfig) -> dict:
    """Write :func:`build_prompts` to ``cfg.output`` atomically and return the document."""
    doc = build_prompts(cfg)
    atomic_write_json(cfg.output, doc)
    log.info("wrote %d prompts for %d images to %s", doc["info"]["n_prompts"], len(doc["images"]), cfg.output)
    return doc
