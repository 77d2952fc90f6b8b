"""Image-level metrics (scikit-learn, wrapped): one decision threshold, named fields.

Inputs everywhere: ``labels`` N ints (0 good, 1 defect), ``scores`` N finite floats (higher =
more defective), ``threshold`` a float (defective iff ``score >= threshold``). Undefined numbers
(AUROC with one class, precision with nothing flagged) come back as ``None``, shown as N/A.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GOOD = "good"


def _num(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def image_metrics(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float | None,
    defect_types: Sequence[str] | None = None,
) -> dict:
    """accuracy, good_recall, defect_recall, precision, f1 (defect class), auroc, ap,
    confusion [[TN, FP], [FN, TP]], n_good, n_defect and, with ``defect_types`` (N names,
    "good" for good images), per_type_recall {type: fraction flagged correctly}.
    ``threshold`` None (no usable threshold): every number that needs one is None."""
    from sklearn import metrics

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if threshold is None:
        out = image_metrics(y, s, 0.0, defect_types)
        for key in ("accuracy", "good_recall", "defect_recall", "precision", "f1", "confusion"):
            out[key] = None
        if "per_type_recall" in out:
            out["per_type_recall"] = dict.fromkeys(out["per_type_recall"])
        return out
    pred = (s >= threshold).astype(int)
    both = bool(np.any(y == 0) and np.any(y == 1))
    out = {
        "accuracy": _num(metrics.accuracy_score(y, pred)) if y.size else None,
        "good_recall": _num(metrics.recall_score(y, pred, pos_label=0, zero_division=np.nan)),
        "defect_recall": _num(metrics.recall_score(y, pred, pos_label=1, zero_division=np.nan)),
        "precision": _num(metrics.precision_score(y, pred, pos_label=1, zero_division=np.nan)),
        "f1": _num(metrics.f1_score(y, pred, pos_label=1, zero_division=np.nan)),
        "auroc": _num(metrics.roc_auc_score(y, s)) if both else None,
        "ap": _num(metrics.average_precision_score(y, s)) if np.any(y == 1) else None,
        "confusion": metrics.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "n_good": int(np.sum(y == 0)),
        "n_defect": int(np.sum(y == 1)),
    }
    if defect_types is not None:
        types = np.asarray(defect_types, dtype=object)
        per_type = {}
        for name in sorted(set(types.tolist())):
            sel = types == name
            pos = 0 if name == GOOD else 1
            per_type[name] = _num(
                metrics.recall_score(y[sel], pred[sel], pos_label=pos, zero_division=np.nan)
            )
        out["per_type_recall"] = per_type
    return out


def curves(labels: Sequence[int], scores: Sequence[float]) -> dict | None:
    """ROC (fpr, tpr) and PR (recall, precision) curves as lists, or None with one class only."""
    from sklearn import metrics

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if not (np.any(y == 0) and np.any(y == 1)):
        return None
    fpr, tpr, _ = metrics.roc_curve(y, s)
    precision, recall, _ = metrics.precision_recall_curve(y, s)
    return {
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "recall": recall.tolist(),
        "precision": precision.tolist(),
    }
