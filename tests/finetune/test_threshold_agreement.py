"""The image models choose their threshold (checkpoint, ``pred`` column) by eval's rule: on a
max-F1 tie both pick the higher cut, so ``pred`` in image_scores.csv agrees with the report."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest

from defectkit.eval.classification import image_metrics
from defectkit.eval.thresholds import ThresholdRule, choose_threshold
from defectkit.finetune.image.metrics import val_threshold
from defectkit.finetune.image.predict import format_scores_csv


def test_pred_column_agrees_with_the_eval_report_on_a_tie() -> None:
    # cut >= 0.9 (TP 1 of 2, nothing else flagged) and cut >= 0.3 (TP 2, 2 false alarms): F1 2/3 both
    val_labels, val_scores = np.array([1, 0, 0, 1, 0]), np.array([0.9, 0.7, 0.5, 0.3, 0.1])
    checkpoint_threshold = val_threshold(val_labels, val_scores)
    report_threshold = choose_threshold(val_labels, val_scores, ThresholdRule("max-f1"))
    assert checkpoint_threshold == report_threshold == pytest.approx(0.8)  # the higher cut
    test = [SimpleNamespace(name=f"t{i}", split="test", defect_type="crack" if y else "good", label=y)
            for i, y in enumerate([0, 1, 1, 0])]
    scores = [0.5, 0.85, 0.3, 0.79]
    rows = list(csv.DictReader(format_scores_csv(test, scores, checkpoint_threshold).splitlines()))
    written = np.array([float(r["score"]) for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    report = image_metrics(labels, written, report_threshold)
    pred = np.array([int(r["pred"]) for r in rows])
    assert pred.tolist() == [0, 1, 0, 0]
    tn, fp, fn, tp = (int(((labels == y) & (pred == p)).sum()) for y, p in ((0, 0), (0, 1), (1, 0), (1, 1)))
    assert report["confusion"] == [[tn, fp], [fn, tp]]
