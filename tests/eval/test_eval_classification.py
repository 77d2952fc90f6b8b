"""Every image-level number against scikit-learn; bootstrap intervals seeded and sane."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from defectkit.eval.bootstrap import _confusion_numbers, bootstrap_image_metrics
from defectkit.eval.classification import curves, image_metrics

rng = np.random.default_rng(3)
y_true = rng.integers(0, 2, 40)
scores = np.clip(0.3 * y_true + rng.normal(0.35, 0.2, 40), 0, 1)
types = np.where(y_true == 0, "good", np.where(rng.random(40) < 0.5, "crack", "hole"))


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.61, 0.8])
def test_image_metrics_equal_sklearn(threshold):
    m = image_metrics(y_true, scores, threshold, types)
    p = (scores >= threshold).astype(int)
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, p))
    assert m["good_recall"] == pytest.approx(metrics.recall_score(y_true, p, pos_label=0))
    assert m["defect_recall"] == pytest.approx(metrics.recall_score(y_true, p))
    assert m["precision"] == pytest.approx(metrics.precision_score(y_true, p))
    assert m["f1"] == pytest.approx(metrics.f1_score(y_true, p))
    assert m["auroc"] == pytest.approx(metrics.roc_auc_score(y_true, scores))
    assert m["ap"] == pytest.approx(metrics.average_precision_score(y_true, scores))
    assert m["confusion"] == metrics.confusion_matrix(y_true, p).tolist()
    for t in ("crack", "hole"):
        assert m["per_type_recall"][t] == pytest.approx(p[types == t].mean())
    assert m["per_type_recall"]["good"] == pytest.approx(1 - p[types == "good"].mean())


def test_confusion_numbers_used_by_the_bootstrap_equal_sklearn():
    for t in (0.2, 0.5, 0.7):
        p = (scores >= t).astype(int)
        fast = _confusion_numbers(y_true, p)
        ref = image_metrics(y_true, scores, t)
        for k, v in fast.items():
            assert v == pytest.approx(ref[k]), k


def test_undefined_numbers_are_none():
    m = image_metrics([0, 0, 1], [0.1, 0.2, 0.3], threshold=0.9)  # nothing flagged
    assert m["precision"] is None and m["defect_recall"] == 0.0
    m = image_metrics([0, 0], [0.1, 0.2], threshold=0.15)  # one class only
    assert m["auroc"] is None and m["ap"] is None and m["defect_recall"] is None
    assert curves([0, 0], [0.1, 0.2]) is None


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    a = bootstrap_image_metrics(y_true, scores, 0.5, n=200, seed=1)
    b = bootstrap_image_metrics(y_true, scores, 0.5, n=200, seed=1)
    c = bootstrap_image_metrics(y_true, scores, 0.5, n=200, seed=2)
    assert a == b and a != c
    point = image_metrics(y_true, scores, 0.5)
    for k, (lo, hi) in a.items():
        assert lo <= point[k] <= hi, k
        assert hi - lo < 0.5


def test_bootstrap_of_a_perfect_model_is_a_point():
    y = np.array([0] * 10 + [1] * 10)
    ci = bootstrap_image_metrics(y, y * 0.8 + 0.1, 0.5, n=50, seed=0)
    assert ci["accuracy"] == [1.0, 1.0] and ci["auroc"] == [1.0, 1.0]


def test_bootstrap_shows_a_bar_on_a_terminal(capsys) -> None:
    import numpy as np

    from defectkit.eval.bootstrap import bootstrap_image_metrics
    from defectkit.progress import set_progress_enabled

    labels, scores = np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    set_progress_enabled(True)
    try:
        bootstrap_image_metrics(labels, scores, 0.5, n=20)
    finally:
        set_progress_enabled(None)
    assert "bootstrap" in capsys.readouterr().err
    bootstrap_image_metrics(labels, scores, 0.5, n=20)  # not a terminal: no bar
    assert "bootstrap" not in capsys.readouterr().err
