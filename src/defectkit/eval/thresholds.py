"""Image-level decision thresholds, always chosen on the validation split (never on test).

An image is called defective when ``score >= threshold`` (score higher = more defective).
Chosen thresholds sit halfway between two neighbouring distinct validation scores, so a test
score equal to a validation score is never decided by floating-point luck.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RULES = ("max-f1", "balanced", "good-recall", "fixed")


@dataclass(frozen=True)
class ThresholdRule:
    """``max-f1`` (maximise the defect-class F1 on val), ``balanced`` (maximise the balanced
    accuracy on val, i.e. Youden's J = defect recall + good recall - 1, which does not depend on
    how many good and defect images val holds), ``good-recall`` (the lowest threshold
    whose val good recall is >= ``value``) or ``fixed`` (use ``value`` as the threshold)."""

    kind: str = "max-f1"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"unknown threshold rule {self.kind!r}; expected one of {RULES}")
        if self.needs_both_classes and self.value is not None:
            raise ValueError(f"{self.kind} takes no value")
        if self.kind == "good-recall" and (self.value is None or not 0.0 <= self.value <= 1.0):
            raise ValueError(f"good-recall needs a value in [0, 1], got {self.value}")
        if self.kind == "fixed" and (self.value is None or not math.isfinite(self.value)):
            raise ValueError(f"fixed needs a finite value, got {self.value}")

    @property
    def needs_both_classes(self) -> bool:
        """True for the rules that compare good and defect images on val (max-f1, balanced)."""
        return self.kind in ("max-f1", "balanced")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"


def parse_threshold_rule(text: str) -> ThresholdRule:
    """Parse ``"max-f1"``, ``"balanced"``, ``"good-recall=0.95"`` or ``"fixed=0.5"`` (ValueError
    when malformed)."""
    kind, sep, raw = text.strip().partition("=")
    if not sep:
        return ThresholdRule(kind)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{text!r}: {raw!r} is not a number") from None
    return ThresholdRule(kind, value)


def _between(lo: float, hi: float) -> float:
    """Midpoint of two neighbouring distinct scores (``hi`` may be +inf: just above ``lo``)."""
    if math.isinf(hi):
        return float(np.nextafter(lo, math.inf))
    return (lo + hi) / 2.0


def _best_cut(labels: np.ndarray, scores: np.ndarray, objective) -> float:
    """The cut maximising ``objective(tp, fp, n_pos, n_neg)`` over ``scores >= cut`` for every distinct
    score, placed halfway to the next lower score; ties go to the highest threshold (fewest false
    alarms)."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    distinct = np.unique(scores)[::-1]  # candidate cuts: flag every score >= distinct[i]
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    best, best_i = -math.inf, 0
    for i, cut in enumerate(distinct):
        flagged = scores >= cut
        tp = int(np.sum(flagged & (labels == 1)))
        value = objective(tp, int(flagged.sum()) - tp, n_pos, n_neg)
        if value > best + 1e-12:
            best, best_i = value, i
    lower = distinct[best_i + 1] if best_i + 1 < len(distinct) else None
    return float(distinct[best_i]) if lower is None else _between(float(lower), float(distinct[best_i]))


def max_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising the defect-class F1 of ``scores >= t`` on (labels, scores).

    labels: N ints (0 good, 1 defect), both classes present; scores: N floats.
    Ties between cut points go to the highest threshold (fewest false alarms).
    """
    return _best_cut(labels, scores, lambda tp, fp, n_pos, n_neg: 2 * tp / (tp + fp + n_pos))


def balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising the balanced accuracy (defect recall + good recall) / 2 of
    ``scores >= t`` on (labels, scores), i.e. Youden's J of the ROC curve.

    labels: N ints (0 good, 1 defect), both classes present; scores: N floats. Unlike max-F1 the
    choice does not lean on the class ratio of val (val carved from the train side is mostly good
    images, while MVTec test sets are mostly defects). Ties go to the highest threshold.
    """
    return _best_cut(labels, scores, lambda tp, fp, n_pos, n_neg: tp / n_pos - fp / n_neg)


def good_recall_threshold(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest threshold whose good recall (fraction of good images with ``score < t``) on
    (labels, scores) is at least ``target``; placed halfway to the next distinct score."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    good = np.sort(scores[labels == 0])
    k = math.ceil(target * len(good) - 1e-9)  # good images that must fall below t
    if k <= 0:
        return float(scores.min())
    kth = float(good[k - 1])
    above = scores[scores > kth]
    return _between(kth, float(above.min()) if above.size else math.inf)


def unusable_reason(scores: np.ndarray) -> str | None:
    """Why max-F1 cannot choose a meaningful threshold on these validation scores (None when it
    can): all scores equal (a model with no detections, or a constant score) separate nothing, and
    the only cut calls every image defective."""
    scores = np.asarray(scores, dtype=float)
    if scores.size and np.unique(scores).size == 1:
        return f"no usable threshold: all val scores equal ({float(scores[0]):.3g})"
    return None


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule: ThresholdRule) -> float:
    """Apply ``rule`` to validation (labels, scores). ValueError when the rule cannot apply."""
    if rule.kind == "fixed":
        return float(rule.value)
    labels = np.asarray(labels, dtype=int)
    if labels.size == 0:
        raise ValueError("no validation images to choose the threshold on")
    if rule.kind == "good-recall":
        if not np.any(labels == 0):
            raise ValueError("good-recall needs good images in the validation split")
        return good_recall_threshold(labels, scores, float(rule.value))
    if not (np.any(labels == 0) and np.any(labels == 1)):
        raise ValueError(f"{rule.kind} needs good and defective images in the validation split")
    if rule.kind == "balanced":
        return balanced_threshold(labels, scores)
    return max_f1_threshold(labels, scores)
