"""Per-image agreement between ground truth and predictions, and the review order built on it.

Pure functions on :class:`~defectkit.annotate.sources.Shape` lists; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from defectkit.annotate.sources import Shape

#: statuses in review order (most in need of a human look first)
STATUSES = ("miss", "false_positive", "low_iou", "match", "true_negative")


@dataclass(frozen=True)
class ImageAgreement:
    """How far the predictions on one image agree with its ground truth.

    iou: IoU of the union of GT regions and the union of predicted regions (masks, or boxes for
    box-only instances), in [0, 1]; None when both are empty (nothing to compare).
    status: one of :data:`STATUSES` ("miss" = GT present, nothing predicted).
    max_score: highest prediction score on the image (0.0 without predictions).
    """

    image_id: int
    name: str
    defect_type: str
    n_gt: int
    n_pred: int
    iou: float | None
    max_score: float
    status: str


def union_region(shapes: Iterable[Shape], height: int, width: int) -> np.ndarray:
    """HxW bool union of the shapes' regions (masks, or boxes where there is no mask)."""
    out = np.zeros((height, width), bool)
    for s in shapes:
        out |= s.region(height, width)
    return out


def image_agreement(
    image_id: int,
    name: str,
    defect_type: str,
    height: int,
    width: int,
    gt: Sequence[Shape],
    pred: Sequence[Shape],
    iou_threshold: float = 0.5,
) -> ImageAgreement:
    """Compare one image's GT and predictions (already filtered by score)."""
    g = union_region(gt, height, width)
    p = union_region(pred, height, width)
    union = int(np.count_nonzero(g | p))
    iou = None if union == 0 else int(np.count_nonzero(g & p)) / union
    if not gt and not pred:
        status = "true_negative"
    elif gt and not pred:
        status = "miss"
    elif pred and not gt:
        status = "false_positive"
    else:
        status = "match" if iou is not None and iou >= iou_threshold else "low_iou"
    max_score = max((s.score or 0.0 for s in pred), default=0.0)
    return ImageAgreement(image_id, name, defect_type, len(gt), len(pred), iou, float(max_score), status)


def disagreement_key(row: ImageAgreement) -> tuple:
    """Sort key: misses first, then lowest IoU (false positives have IoU 0), then true negatives.

    Ties: higher max score first (a confident wrong prediction is worth a look), then name.
    """
    miss_rank = 0 if row.status == "miss" else 1
    iou = 1.0 if row.iou is None else row.iou
    return (miss_rank, row.status == "true_negative", iou, -row.max_score, row.name)


def review_order(rows: Iterable[ImageAgreement]) -> list[ImageAgreement]:
    """Rows sorted by :func:`disagreement_key` (the gallery's order)."""
    return sorted(rows, key=disagreement_key)
