"""The threshold rules on known score lists (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.eval.thresholds import (
    ThresholdRule,
    choose_threshold,
    good_recall_threshold,
    max_f1_threshold,
    parse_threshold_rule,
)

#            good good good good defect defect defect
LABELS = [0, 0, 0, 0, 1, 1, 1]
SCORES = [0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.9]


def test_max_f1_on_a_known_list():
    # cuts (flag >= cut): 0.9 -> F1 2/4=.5; 0.8 -> 4/5=.8; 0.7 -> 4/6=.667; 0.6 -> 6/7=.857 (best);
    # 0.3 -> 6/8; ... so flag {0.6, 0.7, 0.8, 0.9}: threshold halfway between 0.3 and 0.6
    assert max_f1_threshold(LABELS, SCORES) == pytest.approx(0.45)


def test_max_f1_flagging_everything_uses_the_lowest_score():
    # cut 0.9: 2*1/(1+2) = 2/3; cut 0.5: 2/(2+2) = 1/2; cut 0.4: 4/(3+2) = 4/5 -> best flags all
    assert max_f1_threshold([1, 0, 1], [0.9, 0.5, 0.4]) == pytest.approx(0.4)


def test_max_f1_ties_go_to_the_higher_threshold():
    labels, scores = [1, 0, 0, 1], [0.9, 0.8, 0.7, 0.1]
    # cut 0.9: 2/3; cut 0.8: 2/4; cut 0.7: 2/5; cut 0.1: 4/6 = 2/3 -> tie, higher cut wins
    assert max_f1_threshold(labels, scores) == pytest.approx(0.85)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (1.0, 0.75),  # all 4 good below: above 0.7, halfway to 0.8
        (0.75, 0.45),  # 3 of 4 good below: above 0.3, halfway to the next score 0.6
        (0.5, 0.25),  # 2 of 4: above 0.2, halfway to 0.3
        (0.0, 0.1),  # nothing required: the lowest score
    ],
)
def test_good_recall_rule(target, expected):
    t = good_recall_threshold(LABELS, SCORES, target)
    assert t == pytest.approx(expected)
    good = np.array(SCORES)[np.array(LABELS) == 0]
    assert np.mean(good < t) >= target


def test_good_recall_when_the_highest_score_is_good():
    t = good_recall_threshold([0, 1, 0], [0.2, 0.5, 0.9], 1.0)
    assert t > 0.9 and t == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("max-f1", ThresholdRule("max-f1")),
        ("good-recall=0.95", ThresholdRule("good-recall", 0.95)),
        ("fixed=0.5", ThresholdRule("fixed", 0.5)),
    ],
)
def test_parse_rules(text, rule):
    assert parse_threshold_rule(text) == rule
    assert str(rule) == text


@pytest.mark.parametrize(
    "text", ["max-f2", "good-recall", "good-recall=1.5", "fixed=abc", "max-f1=0.3", "fixed=nan"]
)
def test_parse_rejects_bad_rules(text):
    with pytest.raises(ValueError):
        parse_threshold_rule(text)


def test_choose_threshold_needs_both_classes_for_max_f1():
    with pytest.raises(ValueError, match="good and defective"):
        choose_threshold([0, 0], [0.1, 0.2], ThresholdRule("max-f1"))
    assert choose_threshold([], [], ThresholdRule("fixed", 0.3)) == 0.3


def test_balanced_threshold_is_youdens_j_of_sklearns_roc() -> None:
    from sklearn.metrics import roc_curve

    from defectkit.eval.thresholds import balanced_threshold

    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = np.array([0] * 50 + [1] * 4)
        scores = np.concatenate([rng.normal(0, 1, 50), rng.normal(1.5, 1, 4)]).round(2)
        t = balanced_threshold(labels, scores)
        fpr, tpr, cuts = roc_curve(labels, scores)
        best = np.max(tpr - fpr)
        pred = scores >= t
        j = pred[labels == 1].mean() - pred[labels == 0].mean()
        assert j == pytest.approx(best)
        assert not np.any(scores == t)  # halfway between two val scores


def test_balanced_differs_from_max_f1_on_a_mostly_good_val() -> None:
    from defectkit.eval.thresholds import ThresholdRule, choose_threshold

    # 54 good images with a tail, 3 defects, one of them weak (the real bottle sample's val shape)
    good = np.concatenate([np.linspace(1.0, 3.0, 49), [3.2, 3.5, 3.8, 4.4, 4.7]])
    labels = np.array([0] * 54 + [1] * 3)
    scores = np.concatenate([good, [3.13, 5.76, 5.84]])
    f1 = choose_threshold(labels, scores, ThresholdRule("max-f1"))
    bal = choose_threshold(labels, scores, ThresholdRule("balanced"))
    assert 4.7 < f1 < 5.76  # max-F1 protects precision on a val of mostly good images
    assert 3.0 < bal < 3.13  # balanced accuracy takes the weak defect at 5 false alarms in 54
    with pytest.raises(ValueError, match="balanced takes no value"):
        ThresholdRule("balanced", 0.5)
    assert parse_threshold_rule("balanced") == ThresholdRule("balanced")
