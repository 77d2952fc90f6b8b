"""Data for SAM training: COCO instances -> (image, GT boxes, GT masks), SAM input preprocessing,
and prompt sampling (jittered boxes, positive/negative points).

Coordinate conventions: boxes are XYXY float pixels of the original image unless a name says
``_input`` (then they are in the resized SAM input frame, longest side = ``image_size``); masks
are HxW bool at the original image size; images are HWC uint8 RGB.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from defectkit.errors import InputError
from defectkit.fileio import check_complete, read_json

if TYPE_CHECKING:  # annotations only
    from torch import Tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamSample:
    """One image with its instances: ``boxes`` Nx4 float32 XYXY pixels, ``masks`` NxHxW bool,
    ``category_ids`` N int. ``image_id`` is the global COCO image id."""

    image_id: int
    name: str
    path: Path
    width: int
    height: int
    defect_type: str
    boxes: np.ndarray
    masks: np.ndarray = field(repr=False)
    category_ids: np.ndarray = field(repr=False)
    aug: int = 0  # dihedral transform of the image file (see :func:`dihedral`); 0 = as stored


#: number of dihedral variants per augmentation name (variant k < n is drawn per step)
AUGMENTATIONS = {"none": 1, "hflip": 2, "flips": 4, "dihedral": 8}


def dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an HxW[xC] array: bit 2 of ``k`` transposes (swaps H and W)
    first, then bit 0 flips left-right and bit 1 flips top-bottom. ``k`` = 0 returns the array."""
    if k & 4:
        array = np.swapaxes(array, 0, 1)
    if k & 1:
        array = array[:, ::-1]
    if k & 2:
        array = array[::-1]
    return np.ascontiguousarray(array)


def transform_sample(sample: SamSample, k: int) -> SamSample:
    """``sample`` seen through dihedral transform ``k`` (masks moved, boxes recomputed as their tight
    boxes, width/height swapped by a transpose); the image is transformed when it is read
    (``aug`` field). Only for samples as loaded (``aug`` 0)."""
    if k == 0:
        return sample
    if sample.aug:
        raise ValueError("transform_sample: sample is already transformed")
    masks = np.stack([dihedral(m, k) for m in sample.masks]) if len(sample.masks) else sample.masks
    h, w = (sample.width, sample.height) if k & 4 else (sample.height, sample.width)
    if not len(sample.masks):
        masks = np.zeros((0, h, w), bool)
    boxes = np.stack([mask_to_box(m) for m in masks]) if len(masks) else sample.boxes
    return replace(sample, width=w, height=h, boxes=boxes, masks=masks, aug=k)


def ann_to_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """A COCO annotation's ``segmentation`` (polygons, uncompressed or compressed RLE) as HxW bool."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if isinstance(seg, list):
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(seg, dict) and "counts" in seg:
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else dict(seg)
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise ValueError("annotation has no polygon or RLE segmentation")
    return mask_utils.decode(rle).astype(bool)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """Tight XYXY box (float32, pixel edges: a single pixel (x, y) gives [x, y, x+1, y+1])."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.zeros(4, np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _dataset_root(coco: dict, coco_path: Path, dataset: str | os.PathLike | None) -> Path:
    if dataset is not None:
        return Path(dataset)
    root = (coco.get("info") or {}).get("dataset")
    if not root:
        raise InputError(
            f"{coco_path}: info.dataset is missing; cannot find the images (pass the dataset folder)"
        )
    return Path(root)


def load_coco_samples(
    coco_path: str | os.PathLike, *, dataset: str | os.PathLike | None = None, with_empty: bool = False
) -> list[SamSample]:
    """Read a COCO instances file written by ``defectkit convert`` into samples, sorted by image id.

    Images are found at ``info.dataset / file_name`` (or ``dataset / file_name``). Images without
    annotations are dropped unless ``with_empty``; annotations without a usable mask are skipped
    with one counted warning. InputError names the file for unreadable JSON or missing images.
    """
    path = Path(coco_path)
    check_complete(path)
    coco = read_json(path, "COCO file")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise InputError(f"{path}: not a COCO instances file (no 'images' list)")
    root = _dataset_root(coco, path, dataset)
    by_image: dict[int, list[dict]] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    samples, skipped = [], 0
    for img in sorted(coco["images"], key=lambda r: int(r["id"])):
        anns = sorted(by_image.get(int(img["id"]), []), key=lambda a: int(a["id"]))
        if not anns and not with_empty:
            continue
        h, w = int(img["height"]), int(img["width"])
        masks, cats = [], []
        for ann in anns:
            try:
                m = ann_to_mask(ann, h, w)
            except (ValueError, TypeError, KeyError):
                m = np.zeros((h, w), bool)
            if not m.any():
                skipped += 1
                continue
            masks.append(m)
            cats.append(int(ann.get("category_id", 1)))
        if not masks and not with_empty:
            continue
        image_path = root / img["file_name"]
        if not image_path.is_file():
            raise InputError(f"{path}: image {img['file_name']!r} not found at {image_path}")
        mask_arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        samples.append(
            SamSample(
                image_id=int(img["id"]),
                name=str(img.get("name", Path(img["file_name"]).stem)),
                path=image_path,
                width=w,
                height=h,
                defect_type=str(img.get("defect_type", "defect")),
                boxes=np.stack([mask_to_box(m) for m in mask_arr]) if masks else np.zeros((0, 4), np.float32),
                masks=mask_arr,
                category_ids=np.array(cats, np.int64),
            )
        )
    if skipped:
        log.warning("%s: skipped %d annotation(s) with an empty or unreadable mask", path, skipped)
    return samples


def preprocess_image(image: np.ndarray, image_size: int) -> tuple[Tensor, tuple[int, int]]:
    """HWC uint8 RGB -> (1x3xSxS float tensor, normalised and padded bottom-right, input (h, w)).

    Same steps as ``SamPredictor.set_image``: ``ResizeLongestSide`` then ``Sam.preprocess``'s
    ImageNet mean/std (x255) normalisation and zero padding to ``image_size``.
    """
    import torch
    import torch.nn.functional as F
    from segment_anything.utils.transforms import ResizeLongestSide

    resized = ResizeLongestSide(image_size).apply_image(image)
    x = torch.as_tensor(resized).permute(2, 0, 1).float()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    x = (x - mean) / std
    h, w = resized.shape[:2]
    x = F.pad(x, (0, image_size - w, 0, image_size - h))
    return x.unsqueeze(0), (h, w)


def input_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(h, w) of an image of the given size after ``ResizeLongestSide(image_size)``."""
    from segment_anything.utils.transforms import ResizeLongestSide

    return ResizeLongestSide.get_preprocess_shape(height, width, image_size)


def masks_to_lowres(masks: np.ndarray, image_size: int, lowres: int) -> np.ndarray:
    """NxHxW bool masks -> Nx(lowres)x(lowres) float32 targets in the decoder's low-res frame
    (resized like the image, padded bottom-right to ``image_size``, area-averaged down)."""
    import cv2

    n, h, w = masks.shape
    ih, iw = input_shape(h, w, image_size)
    scale = lowres / image_size
    th, tw = max(1, round(ih * scale)), max(1, round(iw * scale))
    out = np.zeros((n, lowres, lowres), np.float32)
    for i, m in enumerate(masks):
        out[i, :th, :tw] = cv2.resize(m.astype(np.float32), (tw, th), interpolation=cv2.INTER_AREA)
    return out


def jitter_boxes(
    boxes: np.ndarray, fraction: float, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Move each side of Nx4 XYXY pixel boxes by up to ``fraction`` x the box size (uniformly, per
    side), clip to the image and keep every box at least one pixel wide."""
    if fraction <= 0 or len(boxes) == 0:
        return boxes.astype(np.float32, copy=True)
    bw = (boxes[:, 2] - boxes[:, 0])[:, None]
    bh = (boxes[:, 3] - boxes[:, 1])[:, None]
    size = np.concatenate([bw, bh, bw, bh], axis=1)
    out = boxes + rng.uniform(-fraction, fraction, boxes.shape) * size
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    out[:, 2] = np.maximum(out[:, 2], np.minimum(out[:, 0] + 1, width))
    out[:, 3] = np.maximum(out[:, 3], np.minimum(out[:, 1] + 1, height))
    return out.astype(np.float32)


def sample_points(
    masks: np.ndarray, boxes: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points per instance: (coords Nx(P)x2 float XY pixel centres, labels NxP int 1/0).

    Positives are drawn inside the mask; negatives outside the mask but inside its box when the
    box has background, else anywhere outside the mask. A missing point is padded with label -1
    (SAM's "not a point").
    """
    n, h, w = masks.shape
    p = n_pos + n_neg
    coords = np.zeros((n, p, 2), np.float32)
    labels = -np.ones((n, p), np.int64)
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in np.round(boxes[i]))
        inside = np.zeros((h, w), bool)
        inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
        pools = [(np.argwhere(masks[i]), n_pos, 1)]
        neg = np.argwhere(inside & ~masks[i])
        pools.append((neg if len(neg) else np.argwhere(~masks[i]), n_neg, 0))
        j = 0
        for pool, k, lab in pools:
            if len(pool) == 0:
                j += k
                continue
            for yx in pool[rng.integers(0, len(pool), k)]:
                coords[i, j] = (yx[1] + 0.5, yx[0] + 0.5)
                labels[i, j] = lab
                j += 1
    return coords, labels
