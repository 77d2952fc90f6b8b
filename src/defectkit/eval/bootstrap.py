"""Seeded bootstrap 95% confidence intervals (percentile method) over the test images.

Each resample draws N images with replacement; the threshold stays the one chosen on val.
A resample where a metric is undefined (e.g. no defective image drawn) is left out for that
metric. Intervals are [2.5th, 97.5th] percentiles, or None with fewer than 10 defined resamples.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np

from defectkit.eval.coco_metrics import ap_from_precision, make_cocoeval
from defectkit.progress import progress

IMAGE_METRICS = ("accuracy", "good_recall", "defect_recall", "precision", "f1", "auroc", "ap")
MIN_DEFINED = 10


def _interval(values: list[float], level: float) -> list[float] | None:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size < MIN_DEFINED:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    return [float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail))]


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _confusion_numbers(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """accuracy, recalls, precision, F1 from the confusion counts (equal to scikit-learn's; the
    tests check this) -- counting is ~100x faster than sklearn's input validation per resample."""
    tp = int(np.sum((pred == 1) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    return {
        "accuracy": _ratio(tp + tn, y.size),
        "good_recall": _ratio(tn, tn + fp),
        "defect_recall": _ratio(tp, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def bootstrap_image_metrics(
    labels, scores, threshold: float | None, *, n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float] | None]:
    """{metric: [low, high] or None} for IMAGE_METRICS; AUROC and AP via scikit-learn. With
    ``threshold`` None (no usable threshold) only AUROC and AP get an interval."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in IMAGE_METRICS}
    for _ in progress(range(n), desc="bootstrap", total=n):
        idx = rng.integers(0, y.size, y.size)
        yi, si = y[idx], s[idx]
        if threshold is not None:
            for k, v in _confusion_numbers(yi, (si >= threshold).astype(int)).items():
                samples[k].append(v)
        both = yi.min() != yi.max()
        samples["auroc"].append(float(roc_auc_score(yi, si)) if both else math.nan)
        samples["ap"].append(float(average_precision_score(yi, si)) if yi.any() else math.nan)
    return {k: _interval(v, level) for k, v in samples.items()}


def resampled_coco_ap(ev, per_image: list, idx: np.ndarray) -> tuple[float, float]:
    """(AP, AP50) of the image multiset ``idx`` (positions in ev.params.imgIds at evaluate time)
    from the per-image results ``per_image`` (COCOeval.evalImgs, 'all' area, maxDets 100);
    -1 where undefined. Mutates ``ev``'s accumulate state only."""
    n_img, n_cat = len(per_image) // len(ev.params.catIds), len(ev.params.catIds)
    ev.evalImgs = [per_image[k * n_img + i] for k in range(n_cat) for i in idx]
    ev.params.imgIds = list(range(len(idx)))
    ev._paramsEval.imgIds = list(range(len(idx)))
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    precision = ev.eval["precision"]
    return ap_from_precision(precision), ap_from_precision(precision, iou_index=0)


def bootstrap_coco_ap(
    gt: dict, dets: list[dict], iou_type: str = "bbox", *, n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float] | None]:
    """{"AP": [low, high], "AP50": [...]} for COCO mAP, resampling images.

    COCOeval.evaluate() runs once; each resample re-runs only accumulate() over the per-image
    results of the drawn images (a drawn-twice image counts twice), which is what evaluating a
    dataset holding the duplicated images would give.
    """
    if not gt["images"]:
        return {"AP": None, "AP50": None}
    ev = make_cocoeval(gt, dets, iou_type, all_area_only=True)
    per_image = list(ev.evalImgs)
    n_img = len(ev.params.imgIds)
    rng = np.random.default_rng(seed)
    ap, ap50 = [], []
    for _ in progress(range(n), desc=f"bootstrap {iou_type} AP", total=n):
        a, a50 = resampled_coco_ap(ev, per_image, rng.integers(0, n_img, n_img))
        ap.append(a if a >= 0 else math.nan)
        ap50.append(a50 if a50 >= 0 else math.nan)
    return {"AP": _interval(ap, level), "AP50": _interval(ap50, level)}
