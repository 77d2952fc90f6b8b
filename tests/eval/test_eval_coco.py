"""COCOeval wrapper on tiny hand-made COCO sets whose AP is known."""

from __future__ import annotations

import random

import numpy as np
import pytest

from defectkit.eval.bootstrap import bootstrap_coco_ap, resampled_coco_ap
from defectkit.eval.coco_metrics import coco_eval, make_cocoeval

W = H = 64


def gt_set(boxes: dict[int, list[list[float]]], n_images: int = 3, categories=("crack",)) -> dict:
    """COCO GT: images 1..n (64x64), one annotation per box (category 1), area = box area."""
    images = [
        {
            "id": i,
            "file_name": f"test/x/{i:03d}.png",
            "width": W,
            "height": H,
            "name": f"img{i}",
            "defect_type": "x",
            "label": int(i in boxes),
            "split": "test",
        }
        for i in range(1, n_images + 1)
    ]
    anns = [
        {"id": k + 1, "image_id": img, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for k, (img, b) in enumerate((img, b) for img, bs in boxes.items() for b in bs)
    ]
    cats = [{"id": i + 1, "name": c, "supercategory": "defect"} for i, c in enumerate(categories)]
    return {"images": images, "annotations": anns, "categories": cats}


def det(img: int, box: list[float], score: float, cat: int = 1) -> dict:
    return {"image_id": img, "category_id": cat, "bbox": box, "score": score}


A, B = [10, 10, 20, 20], [30, 5, 24, 24]
GT = gt_set({1: [A], 2: [B]})
ONE_POINT = 1 / 101  # COCO interpolates precision at 101 recall thresholds 0, 0.01, ..., 1


def test_perfect_predictions_give_one():
    r = coco_eval(GT, [det(1, A, 0.9), det(2, B, 0.8)])
    assert r["AP"] == r["AP50"] == r["AP75"] == r["AR100"] == pytest.approx(1.0)
    assert r["per_category"] == {"crack": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}}
    assert r["n_gt"] == 2 and r["n_dets"] == 2 and r["n_images"] == 3


def test_one_miss_halves_recall():
    # precision 1 up to recall 0.5 (51 of the 101 recall thresholds: 0.00 .. 0.50), then 0
    r = coco_eval(GT, [det(1, A, 0.9)])
    assert r["AP50"] == pytest.approx(51 * ONE_POINT)
    assert r["AR100"] == pytest.approx(0.5)


def test_a_duplicate_above_a_true_positive_costs_precision():
    # ranked: TP (P 1, R .5), duplicate FP (P .5, R .5), TP (P 2/3, R 1): interpolated precision is
    # 1 for recall <= .5 (51 thresholds) and 2/3 above (50 thresholds)
    r = coco_eval(GT, [det(1, A, 0.9), det(1, A, 0.8), det(2, B, 0.7)])
    assert r["AP50"] == pytest.approx((51 + 50 * 2 / 3) * ONE_POINT)
    # the same duplicate ranked last costs nothing
    r = coco_eval(GT, [det(1, A, 0.9), det(2, B, 0.8), det(1, A, 0.1)])
    assert r["AP50"] == pytest.approx(1.0)


def test_iou_between_50_and_75_counts_at_50_only():
    shifted = [A[0] + 4, A[1], A[2], A[3]]  # IoU = 16*20 / (24*20) = 0.667
    r = coco_eval(gt_set({1: [A]}), [det(1, shifted, 0.9)])
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == pytest.approx(0.0)


def test_empty_predictions_give_zero_not_a_crash(capsys):
    r = coco_eval(GT, [])
    assert r["AP"] == 0.0 and r["AP50"] == 0.0 and r["AR100"] == 0.0
    assert capsys.readouterr().out == ""  # pycocotools' prints are captured


def test_buckets_without_ground_truth_are_none():
    r = coco_eval(GT, [det(1, A, 0.9)])  # 20x20 and 24x24 boxes: all "small" (< 32^2)
    assert r["AP_small"] is not None
    assert r["AP_medium"] is None and r["AP_large"] is None


def test_category_without_ground_truth_is_none():
    gt = gt_set({1: [A]}, categories=("crack", "hole"))
    r = coco_eval(gt, [det(1, A, 0.9)])
    assert r["per_category"]["crack"]["AP"] == pytest.approx(1.0)
    assert r["per_category"]["hole"]["AP"] is None
    assert r["AP"] == pytest.approx(1.0)  # the undefined category is not averaged in


def test_prediction_order_does_not_change_ap():
    dets = [
        det(1, A, 0.9),
        det(1, [12, 11, 19, 22], 0.6),
        det(2, B, 0.5),
        det(3, [1, 1, 5, 5], 0.7),
        det(2, [33, 8, 20, 20], 0.3),
    ]
    ref = coco_eval(GT, dets)
    for seed in range(3):
        shuffled = dets[:]
        random.Random(seed).shuffle(shuffled)
        assert coco_eval(GT, shuffled) == ref


def test_flipping_images_and_boxes_together_does_not_change_ap():
    def flip(b):
        return [W - b[0] - b[2], b[1], b[2], b[3]]

    dets = [det(1, [12, 11, 19, 22], 0.6), det(2, B, 0.5), det(3, [1, 1, 5, 5], 0.7)]
    ref = coco_eval(GT, dets)
    gt_f = gt_set({1: [flip(A)], 2: [flip(B)]})
    dets_f = [{**d, "bbox": flip(d["bbox"])} for d in dets]
    flipped = coco_eval(gt_f, dets_f)
    for k in ("AP", "AP50", "AP75", "AR100"):
        assert flipped[k] == pytest.approx(ref[k]), k


def test_mask_ap_uses_segmentations():
    from pycocotools import mask as mask_utils

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": [H, W], "counts": r["counts"].decode()}

    m = np.zeros((H, W), bool)
    m[10:30, 10:20] = True
    gt = gt_set({1: [[10, 10, 10, 20]]})
    gt["annotations"][0]["segmentation"] = rle(m)
    gt["annotations"][0]["area"] = int(m.sum())
    half = m.copy()
    half[20:30] = False  # IoU 0.5 exactly
    exact = coco_eval(gt, [{**det(1, [10, 10, 10, 20], 0.9), "segmentation": rle(m)}], "segm")
    halved = coco_eval(gt, [{**det(1, [10, 10, 10, 20], 0.9), "segmentation": rle(half)}], "segm")
    assert exact["AP"] == pytest.approx(1.0)
    assert halved["AP50"] == pytest.approx(1.0) and halved["AP75"] == pytest.approx(0.0)


def test_coco_bootstrap_is_seeded_and_brackets_the_estimate():
    dets = [det(1, A, 0.9), det(1, A, 0.8), det(2, B, 0.7), det(3, [1, 1, 5, 5], 0.75)]
    gt = gt_set({1: [A], 2: [B], 4: [A], 5: [B]}, n_images=6)
    dets += [det(4, A, 0.6), det(5, [0, 40, 10, 10], 0.65)]
    a = bootstrap_coco_ap(gt, dets, n=100, seed=0)
    assert a == bootstrap_coco_ap(gt, dets, n=100, seed=0)
    point = coco_eval(gt, dets)
    assert a["AP50"][0] <= point["AP50"] <= a["AP50"][1]
    assert a["AP50"][0] < a["AP50"][1]
    perfect = bootstrap_coco_ap(GT, [det(1, A, 0.9), det(2, B, 0.8)], n=30, seed=0)
    assert perfect["AP"] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_resampling_reuses_per_image_results_exactly():
    dets = [det(1, A, 0.9), det(1, A, 0.8), det(2, B, 0.7), det(3, [1, 1, 5, 5], 0.75)]
    ev = make_cocoeval(GT, dets, all_area_only=True)
    per_image = list(ev.evalImgs)
    # the identity resample is the point estimate
    ap, ap50 = resampled_coco_ap(ev, per_image, np.arange(3))
    assert (ap, ap50) == (
        pytest.approx(coco_eval(GT, dets)["AP"]),
        pytest.approx(coco_eval(GT, dets)["AP50"]),
    )
    # drawing image 1 twice equals evaluating a data set holding a copy of image 1 (as image 4)
    gt2 = gt_set({1: [A], 2: [B], 4: [A]}, n_images=4)
    dets2 = [*dets, det(4, A, 0.9), det(4, A, 0.8)]
    assert resampled_coco_ap(ev, per_image, np.array([0, 1, 2, 0]))[1] == pytest.approx(
        coco_eval(gt2, dets2)["AP50"]
    )
