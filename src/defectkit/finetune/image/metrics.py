"""Image-level numbers used during training (scikit-learn underneath) and the val threshold rule."""

from __future__ import annotations

import math

import numpy as np


def image_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, defect F1, good/defect recall (pred = score >= threshold) and AUROC.

    scores: N float (higher = more defective); labels: N int (0 good, 1 defect). AUROC is NaN
    when only one class is present; every number is NaN for an empty input.
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    keys = ("accuracy", "f1", "good_recall", "defect_recall", "auroc")
    if len(labels) == 0:
        return dict.fromkeys(keys, math.nan)
    pred = (scores >= threshold).astype(np.int64)
    both = len(np.unique(labels)) == 2
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "f1": float(f1_score(labels, pred, pos_label=1, zero_division=0)),
        "good_recall": float(recall_score(labels, pred, pos_label=0, zero_division=0))
        if (labels == 0).any()
        else math.nan,
        "defect_recall": float(recall_score(labels, pred, pos_label=1, zero_division=0))
        if (labels == 1).any()
        else math.nan,
        "auroc": float(roc_auc_score(labels, scores)) if both else math.nan,
    }


def choose_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest defect F1 (pred = score >= t), placed halfway between the
    lowest score it calls defective and the next lower score (ties: the lowest such threshold).

    Needs at least one defect image among ``labels``.
    """
    from sklearn.metrics import precision_recall_curve

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if not (labels == 1).any():
        raise ValueError("choose_threshold needs at least one defect image")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    t = float(thresholds[int(np.argmax(f1[:-1]))])
    below = scores[scores < t]
    return float((below.max() + t) / 2) if len(below) else t


def good_percentile_threshold(scores: np.ndarray, percentile: float) -> float:
    """Threshold = the given percentile of good-image scores (when no defect image is available)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise ValueError("no good-image scores to take a percentile of")
    return float(np.percentile(scores, percentile))
