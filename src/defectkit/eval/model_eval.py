"""Every metric of one model's predictions on the test split (threshold chosen on val).

The result is a plain JSON-safe dict (see ``evaluate_model``); per-image rows and the data the
worst-case strip needs are returned next to it, not inside it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from defectkit.datasets.io import read_mask
from defectkit.datasets.split import SplitEntry, SplitManifest
from defectkit.errors import InputError
from defectkit.eval import masks as M
from defectkit.eval.bootstrap import bootstrap_coco_ap, bootstrap_image_metrics
from defectkit.eval.classification import curves, image_metrics
from defectkit.eval.coco_metrics import coco_eval
from defectkit.eval.loaders import PredictionSet, global_ids, load_anomaly_map
from defectkit.eval.thresholds import ThresholdRule, choose_threshold, unusable_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalContext:
    """What every model is evaluated against: the manifest, the COCO labels per split, options."""

    manifest: SplitManifest
    gt: dict[str, dict]  # {"test": COCO dataset dict of LABELS/coco/test.json}
    rule: ThresholdRule
    n_bootstrap: int = 1000
    seed: int = 0
    n_worst: int = 6


def image_scores(
    pred: PredictionSet, manifest: SplitManifest, *, from_detections: bool = False
) -> tuple[dict[str, float], str]:
    """{entry name: score} and where it came from: the CSV (unless ``from_detections``), else the
    highest detection score of each image (0.0 for an image without detections)."""
    if pred.scores is not None and not from_detections:
        return pred.scores, "image_scores.csv"
    ids = global_ids(manifest)
    best = dict.fromkeys(ids, 0.0)
    name_of = {v: k for k, v in ids.items()}
    for d in pred.detections or []:
        name = name_of[d["image_id"]]
        best[name] = max(best[name], float(d["score"]))
    return best, "max detection score per image"


def _threshold(pred: PredictionSet, ctx: EvalContext, scores: dict[str, float]) -> dict:
    rule = ctx.rule
    val = ctx.manifest.subset("val")
    if rule.kind != "fixed" and "val" not in pred.splits:
        raise InputError(
            f"{pred.folder}: no predictions for the val split, so no threshold can be chosen "
            "(predict val too, or pass --threshold fixed=T)"
        )
    y = np.array([e.label for e in val], dtype=int)
    s = np.array([scores[e.name] for e in val], dtype=float)
    note = None
    if rule.needs_both_classes and y.size and not (np.any(y == 0) and np.any(y == 1)):
        note = f"val holds one class only: {rule.kind} impossible, used good-recall=0.95"
        rule = ThresholdRule("good-recall", 0.95)
    try:
        value = choose_threshold(y, s, rule)
    except ValueError as exc:
        raise InputError(f"--threshold {ctx.rule}: {exc} (split has {y.size} val images)") from exc
    out = {"rule": str(rule), "value": value, "chosen_on": "fixed" if rule.kind == "fixed" else "val"}
    # good-recall on equal scores is still a rule ("above every val good image"); max-f1 is not
    unusable = unusable_reason(s) if rule.needs_both_classes else None
    out["usable"] = unusable is None
    if unusable:  # a cut through equal scores flags every image or none: no recall of 1 from it
        out["value"], note = None, unusable
    elif y.size and rule.kind != "fixed":
        m = image_metrics(y, s, value)
        out["val"] = {k: m[k] for k in ("accuracy", "good_recall", "defect_recall", "f1")}
    if note:
        out["note"] = note
    return out


def _split_dets(dets: list[dict], gt: dict) -> list[dict]:
    keep = {img["id"] for img in gt["images"]}
    return [d for d in dets if d["image_id"] in keep]


def _check_categories(pred: PredictionSet, dets: list[dict], gt: dict) -> None:
    known = {c["id"] for c in gt["categories"]}
    unknown = sorted({d["category_id"] for d in dets} - known)
    if unknown:
        names = {c["id"]: c["name"] for c in gt["categories"]}
        raise InputError(
            f"{pred.folder / 'detections.json'}: category_id {unknown} not among the labels' categories "
            f"{names} (COCO category ids start at 1; YOLO class index = id - 1)"
        )


def _coco_block(gt: dict, dets: list[dict], iou_type: str, ctx: EvalContext) -> dict:
    out = coco_eval(gt, dets, iou_type)
    if ctx.n_bootstrap:
        out["ci"] = bootstrap_coco_ap(gt, dets, iou_type, n=ctx.n_bootstrap, seed=ctx.seed)
    return out


def _gt_mask(manifest: SplitManifest, e: SplitEntry) -> np.ndarray:
    path = manifest.mask_path(e)
    return np.zeros((e.height, e.width), bool) if path is None else read_mask(path).mask


def _segmenter_masks(pred: PredictionSet, ctx: EvalContext, threshold: float) -> tuple[dict, dict]:
    """Union IoU/Dice (masks with score >= threshold) and instance recall on test images."""
    gt = ctx.gt["test"]
    anns: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    dets: dict[int, list[dict]] = {}
    for d in _split_dets(pred.detections or [], gt):
        if "segmentation" in d and d["score"] >= threshold:
            dets.setdefault(d["image_id"], []).append(d)
    ids = global_ids(ctx.manifest)
    per_image, found, total = {}, 0, 0
    for e in ctx.manifest.subset("test"):
        pm = [M.decode_rle(d["segmentation"]) for d in dets.get(ids[e.name], [])]
        union = M.union_mask(pm, (e.height, e.width))
        iou, dice = M.iou_dice(union, _gt_mask(ctx.manifest, e))
        inst = [M.annotation_mask(a, e.height, e.width) for a in anns.get(ids[e.name], [])]
        f, t = M.instance_recall(inst, pm)
        found, total = found + f, total + t
        per_image[e.name] = {"iou": iou, "dice": dice, "found": f, "instances": t, "pred_mask": union}
    summary = {
        "source": "union of predicted masks with score >= detection_score_threshold",
        "instance_recall": found / total if total else None,
        "n_instances": total,
    }
    return summary, per_image


def _anomaly_masks(pred: PredictionSet, ctx: EvalContext) -> tuple[dict, dict]:
    """Pixel AUROC, AUPRO (FPR <= 0.3) on test maps; IoU/Dice at the max-F1 pixel threshold of val."""
    man = ctx.manifest
    val = [e for e in man.subset("val") if "val" in pred.splits]
    test = man.subset("test")
    vmaps = [load_anomaly_map(pred.maps_dir, e) for e in val]
    pix_thr = M.max_f1_pixel_threshold(vmaps, [_gt_mask(man, e) for e in val]) if val else None
    del vmaps
    tmaps = [load_anomaly_map(pred.maps_dir, e) for e in test]
    tgts = [_gt_mask(man, e) for e in test]
    pixel = {
        "auroc": M.pixel_auroc(tmaps, tgts),
        "aupro": M.aupro(tmaps, tgts, 0.3),
        "fpr_limit": 0.3,
        "threshold": pix_thr,
        "threshold_rule": "max pixel F1 on val",
    }
    per_image = {}
    for e, m, g in zip(test, tmaps, tgts, strict=True):
        if pix_thr is None:
            per_image[e.name] = {"iou": None, "dice": None, "pred_mask": None, "map": m}
        else:
            iou, dice = M.iou_dice(m >= pix_thr, g)
            per_image[e.name] = {"iou": iou, "dice": dice, "pred_mask": m >= pix_thr, "map": m}
    summary = {"source": "anomaly map >= pixel threshold chosen on val"}
    return {"pixel": pixel, **summary}, per_image


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _mask_summary(per_image: dict, test: tuple[SplitEntry, ...]) -> dict:
    """Mean IoU / Dice over defective test images; share of good images given any mask pixel."""
    defect = [e for e in test if e.label == 1]
    good = [e for e in test if e.label == 0]
    flagged = [
        per_image[e.name]["pred_mask"] is not None and bool(per_image[e.name]["pred_mask"].any())
        for e in good
    ]
    return {
        "iou": _mean([per_image[e.name]["iou"] for e in defect]),
        "dice": _mean([per_image[e.name]["dice"] for e in defect]),
        "n_images": len(defect),
        "good_with_mask": (sum(flagged) / len(good))
        if good and per_image[good[0].name]["iou"] is not None
        else None,
    }


def _per_type(report: dict, test: tuple[SplitEntry, ...], per_image: dict) -> dict:
    """{defect type: {n, recall, iou, dice, instance_recall, AP, AP50}} (None where not produced)."""
    out = {}
    for dtype in sorted({e.defect_type for e in test}):
        ents = [e for e in test if e.defect_type == dtype]
        row: dict = {"n": len(ents), "recall": report["image"]["per_type_recall"].get(dtype)}
        if per_image and dtype != "good":
            row["iou"] = _mean([per_image[e.name]["iou"] for e in ents])
            row["dice"] = _mean([per_image[e.name]["dice"] for e in ents])
            if "instances" in per_image[ents[0].name]:
                t = sum(per_image[e.name]["instances"] for e in ents)
                row["instance_recall"] = sum(per_image[e.name]["found"] for e in ents) / t if t else None
        box = (report.get("box") or {}).get("per_category", {}).get(dtype)
        if box:
            row["box_AP"], row["box_AP50"] = box["AP"], box["AP50"]
        out[dtype] = row
    return out


def _worst_cases(test, scores: dict, threshold: float | None, per_image: dict, n: int) -> list[dict]:
    """Missed defects (lowest score first), false alarms (highest first), then lowest IoU; without
    a usable threshold only the lowest IoU. A good image has no mask IoU (None)."""
    cases = []
    if threshold is not None:
        fn = sorted(
            (e for e in test if e.label == 1 and scores[e.name] < threshold), key=lambda e: scores[e.name]
        )
        fp = sorted(
            (e for e in test if e.label == 0 and scores[e.name] >= threshold), key=lambda e: -scores[e.name]
        )
        cases = [(e, "missed defect") for e in fn] + [(e, "false alarm") for e in fp]
    if per_image:
        low = sorted(
            (
                e
                for e in test
                if e.label == 1 and per_image[e.name]["iou"] is not None and per_image[e.name]["iou"] < 1.0
            ),
            key=lambda e: (per_image[e.name]["iou"], e.name),
        )
        cases += [(e, "lowest mask IoU") for e in low]
    out, seen = [], set()
    for e, why in cases:
        if e.name in seen:
            continue
        seen.add(e.name)
        iou = per_image[e.name]["iou"] if per_image and e.label == 1 else None
        out.append(
            {
                "image": e.name,
                "defect_type": e.defect_type,
                "reason": why,
                "score": scores[e.name],
                "iou": iou,
            }
        )
        if len(out) == n:
            break
    return out


def _overlay_data(
    pred: PredictionSet, ctx: EvalContext, worst: list[dict], per_image: dict, threshold: float
) -> list[dict]:
    """For each worst case: entry, GT mask, predicted mask (or None), boxes XYXY (score >= thr)."""
    ids = global_ids(ctx.manifest)
    by_name = {e.name: e for e in ctx.manifest.entries}
    out = []
    for case in worst:
        e = by_name[case["image"]]
        boxes = [
            [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
            for d in pred.detections or []
            if d["image_id"] == ids[e.name] and d["score"] >= threshold
        ]
        info = per_image.get(e.name, {})
        out.append(
            {
                **case,
                "entry": e,
                "gt_mask": _gt_mask(ctx.manifest, e),
                "boxes": boxes,
                "pred_mask": info.get("pred_mask"),
                "map": info.get("map"),
            }
        )
    return out


def _detection_blocks(pred: PredictionSet, ctx: EvalContext, report: dict, det_thr: float) -> dict:
    """Fill report["box"], ["mask_coco"], ["mask"] from detections; returns per-image mask data."""
    gt = ctx.gt["test"]
    _check_categories(pred, pred.detections or [], gt)  # val's detections too, not only test's
    dets = _split_dets(pred.detections or [], gt)
    report["box"] = _coco_block(gt, dets, "bbox", ctx)
    if not (any("segmentation" in d for d in dets) or pred.kind == "segmenter"):
        return {}
    report["mask_coco"] = _coco_block(gt, [d for d in dets if "segmentation" in d], "segm", ctx)
    summary, per_image = _segmenter_masks(pred, ctx, det_thr)
    report["mask"] = {**_mask_summary(per_image, ctx.manifest.subset("test")), **summary}
    return per_image


def _rows(pred: PredictionSet, test, scores: dict, t: float | None, per_image: dict) -> list[dict]:
    return [
        {
            "model": pred.name,
            "image": e.name,
            "split": e.split,
            "defect_type": e.defect_type,
            "label": e.label,
            "score": scores[e.name],
            "pred": None if t is None else int(scores[e.name] >= t),
            "iou": per_image.get(e.name, {}).get("iou"),
            "dice": per_image.get(e.name, {}).get("dice"),
        }
        for e in test
    ]


def _with_auroc(c: dict | None, image: dict) -> dict | None:
    return None if c is None else {**c, "auroc": image["auroc"]}


def evaluate_model(pred: PredictionSet, ctx: EvalContext) -> tuple[dict, list[dict], dict]:
    """(model report, per-image rows of the test split, plot data {"curves", "worst"})."""
    man = ctx.manifest
    test = man.subset("test")
    scores, source = image_scores(pred, man)
    thr = _threshold(pred, ctx, scores)
    t = thr["value"]
    if not thr["usable"]:
        log.warning("%s: %s; threshold-based metrics are N/A", pred.name, thr["note"])
    y, s = [e.label for e in test], [scores[e.name] for e in test]
    image = image_metrics(y, s, t, [e.defect_type for e in test])
    if ctx.n_bootstrap:
        image["ci"] = bootstrap_image_metrics(y, s, t, n=ctx.n_bootstrap, seed=ctx.seed)
    report: dict = {
        "name": pred.name,
        "kind": pred.kind,
        "weights": pred.meta.get("weights"),
        "prediction_folder": str(pred.folder),
        "model_config": pred.meta.get("config", {}),
        "note": pred.meta.get("note"),
        "score_source": source,
        "threshold": thr,
        "image": image,
        **dict.fromkeys(("box", "mask_coco", "mask", "pixel", "detection_score_threshold")),
    }
    per_image: dict = {}
    det_thr = t
    if pred.detections is not None:
        if source == "image_scores.csv":  # CSV scores may live on another scale than box/mask scores
            det_thr = _threshold(pred, ctx, image_scores(pred, man, from_detections=True)[0])["value"]
        report["detection_score_threshold"] = det_thr
        if det_thr is None:  # box scores that separate nothing: every mask counts
            det_thr = -math.inf
        per_image = _detection_blocks(pred, ctx, report, det_thr)
    if pred.maps_dir is not None and not per_image:
        summary, per_image = _anomaly_masks(pred, ctx)
        report["pixel"] = summary.pop("pixel")
        report["mask"] = {**_mask_summary(per_image, test), **summary}
    report["per_type"] = _per_type(report, test, per_image)
    report["worst_cases"] = _worst_cases(test, scores, t, per_image, ctx.n_worst)
    worst = _overlay_data(
        pred, ctx, report["worst_cases"], per_image, -math.inf if det_thr is None else det_thr
    )
    return (
        report,
        _rows(pred, test, scores, t, per_image),
        {"curves": _with_auroc(curves(y, s), image), "worst": worst},
    )
