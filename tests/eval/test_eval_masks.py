"""Mask IoU / Dice, instance recall and the pixel metrics of anomaly maps."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from defectkit.eval.masks import (
    annotation_mask,
    aupro,
    decode_rle,
    instance_recall,
    iou_dice,
    max_f1_pixel_threshold,
    pixel_auroc,
    pro_curve,
    regions,
    union_mask,
)


def block(y0, y1, x0, x1, shape=(20, 20)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize(
    ("pred", "gt", "iou", "dice"),
    [
        (block(0, 4, 0, 4), block(0, 4, 0, 4), 1.0, 1.0),
        (block(0, 4, 0, 4), block(0, 4, 0, 2), 0.5, 2 * 8 / 24),  # 8 shared of 16 / 8 px
        (block(0, 2, 0, 2), block(10, 12, 10, 12), 0.0, 0.0),
        (block(0, 0, 0, 0), block(0, 2, 0, 2), 0.0, 0.0),  # nothing predicted
        (block(0, 0, 0, 0), block(0, 0, 0, 0), 1.0, 1.0),  # good image, nothing predicted
        (block(0, 4, 0, 3), block(0, 4, 1, 4), 8 / 16, 2 * 8 / 24),
    ],
)
def test_iou_and_dice_on_arrays(pred, gt, iou, dice):
    assert iou_dice(pred, gt) == (pytest.approx(iou), pytest.approx(dice))


def test_flipping_image_and_prediction_together_keeps_iou():
    rng = np.random.default_rng(0)
    pred, gt = rng.random((30, 40)) > 0.6, rng.random((30, 40)) > 0.5
    ref = iou_dice(pred, gt)
    for axis in (0, 1):
        assert iou_dice(np.flip(pred, axis), np.flip(gt, axis)) == pytest.approx(ref)
    # and through RLE, as predictions arrive
    enc = mask_utils.encode(np.asfortranarray(np.flip(pred, 1).astype(np.uint8)))
    rle = {"size": enc["size"], "counts": enc["counts"].decode()}
    assert iou_dice(decode_rle(rle), np.flip(gt, 1)) == pytest.approx(ref)


def test_union_and_shape_mismatch():
    u = union_mask([block(0, 2, 0, 2), block(1, 3, 1, 3)], (20, 20))
    assert u.sum() == 7
    assert union_mask([], (5, 6)).shape == (5, 6)
    with pytest.raises(ValueError, match="shapes differ"):
        iou_dice(np.zeros((2, 2), bool), np.zeros((2, 3), bool))


def test_instance_recall_at_iou_half():
    gts = [block(0, 4, 0, 4), block(10, 14, 10, 14), block(0, 2, 16, 20)]
    preds = [
        block(0, 4, 0, 2),  # IoU 0.5 with the first: found
        block(10, 14, 10, 12) | block(10, 11, 12, 14),
    ]  # 10/16 with the second: found
    assert instance_recall(gts, preds) == (2, 3)
    assert instance_recall(gts, []) == (0, 3)
    assert instance_recall([], preds) == (0, 0)


def test_annotation_mask_reads_polygons_rle_and_boxes():
    m = block(2, 8, 3, 9)
    enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert np.array_equal(
        annotation_mask({"segmentation": {"size": [20, 20], "counts": enc["counts"].decode()}}, 20, 20), m
    )
    # a polygon on the outer pixel edges re-rasterises exactly
    poly = {"segmentation": [[3, 2, 9, 2, 9, 8, 3, 8]]}
    assert np.array_equal(annotation_mask(poly, 20, 20), m)
    assert np.array_equal(annotation_mask({"bbox": [3, 2, 6, 6]}, 20, 20), m)


def test_regions_are_8_connected():
    m = block(0, 2, 0, 2) | block(2, 4, 2, 4) | block(10, 12, 10, 12)
    assert sorted(int(r.sum()) for r in regions(m)) == [4, 8]


def test_aupro_hand_computed():
    # one 2x5 image: a 2-pixel region scored 0.9 and 0.5; 8 normal pixels, one at 0.8, rest 0.1.
    # curve: (0,0) (0,.5) (.125,.5) (.125,1) (1,1); up to FPR .3: .125*.5 + .175*1 = .2375 -> /.3
    gt = np.zeros((2, 5), bool)
    gt[0, :2] = True
    amap = np.full((2, 5), 0.1)
    amap[0, 0], amap[0, 1], amap[1, 4] = 0.9, 0.5, 0.8
    fpr, pro = pro_curve([amap], [gt])
    assert fpr.tolist() == [0, 0, 0.125, 0.125, 1] and pro.tolist() == [0, 0.5, 0.5, 1, 1]
    assert aupro([amap], [gt]) == pytest.approx(0.2375 / 0.3)


def test_aupro_perfect_and_undefined():
    gt = block(5, 9, 5, 9)
    assert aupro([gt.astype(float)], [gt]) == pytest.approx(1.0)
    assert aupro([np.zeros((20, 20))], [np.zeros((20, 20), bool)]) is None
    assert pixel_auroc([np.zeros((20, 20))], [np.zeros((20, 20), bool)]) is None


def _brute_force_pro(maps, gts, t):
    comps = [r for g in gts for r in regions(g)]
    normal = np.concatenate([~g.ravel() for g in gts])
    flat = np.concatenate([m.ravel() for m in maps])
    fpr = np.sum((flat >= t) & normal) / normal.sum()
    pro = (
        np.mean([np.mean(m[r] >= t) for m, g in zip(maps, gts, strict=True) for r in regions(g)])
        if comps
        else 0
    )
    return fpr, pro


def test_pro_curve_matches_a_brute_force_count_with_regions_of_different_sizes():
    rng = np.random.default_rng(1)
    gts = [block(2, 4, 2, 4) | block(10, 18, 10, 18), np.zeros((20, 20), bool), block(0, 1, 0, 5)]
    maps = [np.round(g * 0.3 + rng.random(g.shape), 2) for g in gts]  # rounding makes ties
    fpr, pro = pro_curve(maps, gts)
    thresholds = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    for i, t in enumerate(thresholds):
        f, p = _brute_force_pro(maps, gts, t)
        assert fpr[i + 1] == pytest.approx(f) and pro[i + 1] == pytest.approx(p)


def test_pixel_auroc_and_threshold():
    gt = block(5, 10, 5, 10)
    amap = gt * 0.5 + 0.1
    assert pixel_auroc([amap], [gt]) == 1.0
    assert max_f1_pixel_threshold([amap], [gt]) == pytest.approx(0.6)
    assert max_f1_pixel_threshold([amap], [np.zeros_like(gt)]) is None
