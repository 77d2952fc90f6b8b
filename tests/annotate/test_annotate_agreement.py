"""Per-image agreement statuses and the review (disagreement) order."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.annotate.agreement import ImageAgreement, image_agreement, review_order
from defectkit.annotate.sources import Shape

H = W = 20


def _box_shape(x0, y0, x1, y1, score=None, with_mask=True):
    m = None
    if with_mask:
        m = np.zeros((H, W), bool)
        m[y0:y1, x0:x1] = True
    return Shape(1, (x0, y0, x1, y1), m, score)


A = _box_shape(0, 0, 10, 10)


@pytest.mark.parametrize(
    ("gt", "pred", "status", "iou"),
    [
        ([], [], "true_negative", None),
        ([A], [], "miss", 0.0),
        ([], [_box_shape(0, 0, 5, 5, 0.9)], "false_positive", 0.0),
        ([A], [_box_shape(0, 0, 10, 10, 0.9)], "match", 1.0),
        ([A], [_box_shape(0, 0, 10, 5, 0.9)], "match", 0.5),
        ([A], [_box_shape(0, 0, 10, 4, 0.9)], "low_iou", 0.4),
        ([A], [_box_shape(0, 0, 10, 10, 0.9, with_mask=False)], "match", 1.0),  # box-only prediction
        ([A], [_box_shape(0, 0, 5, 10, 0.5), _box_shape(5, 0, 10, 10, 0.7)], "match", 1.0),  # union of parts
    ],
)
def test_image_agreement(gt, pred, status, iou):
    row = image_agreement(7, "img", "d", H, W, gt, pred)
    assert row.status == status
    assert row.iou == (None if iou is None else pytest.approx(iou))
    assert (row.n_gt, row.n_pred) == (len(gt), len(pred))
    assert row.max_score == max((p.score for p in pred), default=0.0)


def _row(name, status, iou, score=0.0):
    return ImageAgreement(0, name, "d", 1, 1, iou, score, status)


def test_review_order_misses_then_lowest_iou_then_true_negatives():
    rows = [
        _row("tn", "true_negative", None),
        _row("good_match", "match", 0.9, 0.9),
        _row("fp_weak", "false_positive", 0.0, 0.3),
        _row("low", "low_iou", 0.2, 0.8),
        _row("miss_b", "miss", 0.0),
        _row("fp_strong", "false_positive", 0.0, 0.95),
        _row("miss_a", "miss", 0.0),
        _row("ok", "match", 0.6, 0.5),
    ]
    assert [r.name for r in review_order(rows)] == [
        "miss_a",
        "miss_b",
        "fp_strong",
        "fp_weak",
        "low",
        "ok",
        "good_match",
        "tn",
    ]
