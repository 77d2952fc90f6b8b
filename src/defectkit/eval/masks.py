"""Mask quality: union IoU / Dice per image, instance recall, and pixel metrics of anomaly maps.

Masks are HxW bool arrays in image pixels; anomaly maps HxW float arrays (higher = more anomalous)
at the image's own size. Pure functions on arrays; RLE decoding uses pycocotools.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou_dice(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two HxW bool masks; both empty counts as perfect agreement (1.0, 1.0)."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    pred = pred.astype(bool, copy=False)
    gt = gt.astype(bool, copy=False)
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if union == 0:
        return 1.0, 1.0
    return inter / union, 2.0 * inter / total


def union_mask(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Union of HxW bool masks (an all-False ``shape`` mask when there are none)."""
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        out |= m.astype(bool, copy=False)
    return out


def instance_recall(
    gt_instances: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray], iou_threshold: float = 0.5
) -> tuple[int, int]:
    """(found, total): ground-truth instances whose best IoU with any predicted mask is
    >= ``iou_threshold``. Several instances may be found by the same prediction."""
    found = 0
    for g in gt_instances:
        if any(iou_dice(p, g)[0] >= iou_threshold for p in pred_masks):
            found += 1
    return found, len(gt_instances)


def decode_rle(segmentation: dict) -> np.ndarray:
    """A COCO RLE dict ({"size": [h, w], "counts": str|bytes}) as an HxW bool mask."""
    from pycocotools import mask as mask_utils

    rle = dict(segmentation)
    if isinstance(rle.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return mask_utils.decode(rle).astype(bool)


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of an HxW bool mask, each as an HxW bool mask."""
    import cv2

    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n)]


def pixel_auroc(maps: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float | None:
    """ROC AUC over all pixels of all images (scikit-learn); None without both pixel classes."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([g.ravel() for g in gts]).astype(np.uint8)
    if y.min() == y.max():
        return None
    s = np.concatenate([m.ravel() for m in maps]).astype(np.float32)
    return float(roc_auc_score(y, s))


def pro_curve(maps: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-region-overlap curve (Bergmann et al., as anomalib computes it): for every
    distinct threshold t (descending), FPR(t) = share of all defect-free pixels with score >= t,
    PRO(t) = mean over the 8-connected ground-truth regions of all images of the share of the
    region's pixels with score >= t. Returns (fpr, pro), starting at (0, 0); None when there is
    no region or no defect-free pixel."""
    per_image = [regions(g) for g in gts]
    n_regions = sum(len(r) for r in per_image)
    if n_regions == 0:
        return None
    weights, normal, scores = [], [], []
    for m, g, regs in zip(maps, gts, per_image, strict=True):
        w = np.zeros(g.shape, dtype=np.float64)
        for r in regs:  # each region adds up to 1 / n_regions when fully covered
            w[r] = 1.0 / (n_regions * np.count_nonzero(r))
        weights.append(w.ravel())
        normal.append(~g.ravel().astype(bool))
        scores.append(np.asarray(m, dtype=np.float32).ravel())
    w, b, s = np.concatenate(weights), np.concatenate(normal), np.concatenate(scores)
    n_normal = int(b.sum())
    if n_normal == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s, w, b = s[order], w[order], b[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # end of each tie group
    fpr = np.r_[0.0, np.cumsum(b)[last] / n_normal]
    pro = np.r_[0.0, np.cumsum(w)[last]]
    return fpr, pro


def aupro(maps: Sequence[np.ndarray], gts: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float | None:
    """Area under the PRO curve up to ``fpr_limit`` (linear interpolation at the limit),
    divided by ``fpr_limit`` so a perfect map scores 1.0. None when undefined."""
    curve = pro_curve(maps, gts)
    if curve is None:
        return None
    fpr, pro = curve
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit and keep.size > x.size:
        j = x.size  # first point beyond the limit
        t = (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x = np.r_[x, fpr_limit]
        y = np.r_[y, pro[j - 1] + t * (pro[j] - pro[j - 1])]
    return float(np.trapezoid(y, x) / fpr_limit)


def max_f1_pixel_threshold(maps: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float | None:
    """The map value maximising pixel-level F1 (scikit-learn's PR curve) over the given images
    (use validation images only); None when they hold no defect pixel."""
    from sklearn.metrics import precision_recall_curve

    y = np.concatenate([g.ravel() for g in gts]).astype(np.uint8)
    if not y.any():
        return None
    s = np.concatenate([m.ravel() for m in maps]).astype(np.float32)
    precision, recall, thresholds = precision_recall_curve(y, s)
    denom = precision[:-1] + recall[:-1]
    f1 = np.where(denom > 0, 2 * precision[:-1] * recall[:-1] / np.where(denom > 0, denom, 1), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """A COCO ground-truth annotation's segmentation (polygons or RLE) as an HxW bool mask;
    falls back to the filled box when the annotation has no segmentation."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return decode_rle(seg)
    if isinstance(seg, list) and seg:
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, height, width))).astype(bool)
    x, y, w, h = ann["bbox"]
    out = np.zeros((height, width), dtype=bool)
    out[int(round(y)) : int(round(y + h)), int(round(x)) : int(round(x + w))] = True
    return out
