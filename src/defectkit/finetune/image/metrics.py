"""Image-level numbers of the training loop, computed by eval's one implementation.

:func:`val_threshold` is eval's max-F1 rule (:func:`defectkit.eval.thresholds.max_f1_threshold`:
halfway between neighbouring scores, ties to the higher cut), so the threshold saved in a
checkpoint, the ``pred`` column of ``image_scores.csv`` and ``defectkit eval``'s report agree.
:func:`val_metrics` is :func:`defectkit.eval.classification.image_metrics` (same argument order:
labels, scores, threshold) with NaN where eval says None, for ``metrics.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from defectkit.eval.classification import image_metrics
from defectkit.eval.thresholds import ThresholdRule, choose_threshold

VAL_KEYS = ("accuracy", "f1", "good_recall", "defect_recall", "auroc")


def val_threshold(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """The max-F1 threshold (``pred = score >= t``) on val: labels N int (0 good, 1 defect), scores N
    float. ValueError unless val holds at least one defect and one good image."""
    labels = np.asarray(labels, dtype=np.int64)
    if not (labels == 1).any():
        raise ValueError("the val threshold needs at least one defect image")
    if not (labels == 0).any():
        raise ValueError("the val threshold needs at least one good image")
    return choose_threshold(labels, np.asarray(scores, dtype=np.float64), ThresholdRule("max-f1"))


def val_metrics(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, float]:
    """Accuracy, defect F1, good/defect recall (``pred = score >= threshold``) and AUROC; NaN for a
    number that is undefined (AUROC with one class, recall of an absent class, an empty input)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return dict.fromkeys(VAL_KEYS, math.nan)
    m = image_metrics(labels, np.asarray(scores, dtype=np.float64), threshold)
    return {k: math.nan if m[k] is None else float(m[k]) for k in VAL_KEYS}


def good_percentile_threshold(scores: np.ndarray, percentile: float) -> float:
    """Threshold = the given percentile of good-image scores (when no defect image is available)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise ValueError("no good-image scores to take a percentile of")
    return float(np.percentile(scores, percentile))
