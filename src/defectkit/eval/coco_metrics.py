"""Box and mask mAP with pycocotools' COCOeval, wrapped: named fields, prints captured.

``gt`` is a COCO dataset dict (images, annotations, categories); ``dets`` a COCO results list
(image_id, category_id, bbox XYWH pixels, score[, segmentation RLE]). Buckets COCOeval marks -1
(no ground truth in that area range / category) come back as ``None`` (shown N/A, never averaged).
An empty ``dets`` gives AP 0 wherever ground truth exists (``COCO.loadRes([])`` would crash).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging

import numpy as np

log = logging.getLogger(__name__)

#: COCOeval.stats order, named.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
IOU_TYPES = ("bbox", "segm")


@contextlib.contextmanager
def _quiet():
    """Swallow pycocotools' prints (logged at debug level instead)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    if buf.getvalue().strip():
        log.debug("pycocotools: %s", buf.getvalue().strip())


def _none_if_missing(value: float) -> float | None:
    return None if value < 0 else float(value)


def _coco_objects(gt: dict, dets: list[dict]):
    """(cocoGt, cocoDt) built silently; ``dets`` is copied (loadRes mutates its input)."""
    from pycocotools.coco import COCO

    gt = {"info": {}, "licenses": [], **gt}
    with _quiet():
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(dets)))
        else:  # an empty result set: same images and categories, no annotations
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
    return coco_gt, coco_dt


def make_cocoeval(gt: dict, dets: list[dict], iou_type: str = "bbox", *, all_area_only: bool = False):
    """A COCOeval with ``evaluate()`` already run (quietly). ``all_area_only`` keeps only the
    'all' area range and maxDets 100 (what the bootstrap needs; 12x less accumulate work)."""
    from pycocotools.cocoeval import COCOeval

    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if iou_type == "segm":
        # without "bbox" loadRes takes area and box from the mask (with it: the box area)
        dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    coco_gt, coco_dt = _coco_objects(gt, dets)
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    ev.params.imgIds = sorted(img["id"] for img in gt["images"])
    if all_area_only:
        ev.params.areaRng = [ev.params.areaRng[0]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [100]
    with _quiet():
        ev.evaluate()
    return ev


def ap_from_precision(
    precision: np.ndarray, iou_index: int | None = None, category: int | None = None
) -> float:
    """Mean of COCOeval.eval['precision'] (T x R x K x A x M) at area 'all' (index 0) and the
    last maxDets, over IoU thresholds (or one ``iou_index``) and categories (or one) with -1
    entries left out; -1 when nothing is defined, exactly as COCOeval.summarize does."""
    p = precision[:, :, :, 0, -1]
    if iou_index is not None:
        p = p[iou_index : iou_index + 1]
    if category is not None:
        p = p[:, :, category : category + 1]
    valid = p[p > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def coco_eval(gt: dict, dets: list[dict], iou_type: str = "bbox") -> dict:
    """COCO mAP of ``dets`` against ``gt``: the 12 COCOeval stats by name (``AP`` = mAP@[.5:.95],
    ``AP50``, ``AP75``, ``AR100``, ...) plus ``per_category`` {name: {"AP", "AP50"}},
    ``n_images``, ``n_gt`` and ``n_dets``. Values are floats in [0, 1] or None (N/A)."""
    ev = make_cocoeval(gt, dets, iou_type)
    with _quiet():
        ev.accumulate()
        ev.summarize()
    out: dict = {name: _none_if_missing(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}
    precision = ev.eval["precision"]
    per_cat = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = ev.cocoGt.cats[cat_id]["name"]
        per_cat[name] = {
            "AP": _none_if_missing(ap_from_precision(precision, category=k)),
            "AP50": _none_if_missing(ap_from_precision(precision, iou_index=0, category=k)),
        }
    out["per_category"] = per_cat
    out["n_images"] = len(gt["images"])
    out["n_gt"] = len(gt["annotations"])
    out["n_dets"] = len(dets)
    return out
