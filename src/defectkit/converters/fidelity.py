"""``--check`` summary: polygon fidelity per defect type, holes lost, specks dropped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean_iou": None, "min_iou": None}
    return {
        "n": len(values),
        "mean_iou": round(float(np.mean(values)), 6),
        "min_iou": round(float(min(values)), 6),
    }


def summarize(entries: Sequence, results: Sequence, report) -> dict:
    """entries: manifest entries; results: worker.ImageResult (with fidelity) in the same order.

    IoU is of each instance's polygons re-rasterised against the instance: COCO with
    pycocotools.frPyObjects (against the instance with holes filled: holes go to RLE), YOLO as
    ultralytics reads the normalised text (int32 pixel coordinates, cv2.fillPoly; holes included).
    """
    per_type: dict[str, dict[str, list[float]]] = {}
    for e, r in zip(entries, results, strict=True):
        d = per_type.setdefault(e.defect_type, {"coco": [], "yolo": []}) if r.fidelity else None
        for coco_iou, yolo_iou in r.fidelity:
            d["coco"].append(coco_iou)
            d["yolo"].append(yolo_iou)
    everything = {k: [v for d in per_type.values() for v in d[k]] for k in ("coco", "yolo")}
    return {
        "overall": {k: _stats(v) for k, v in everything.items()},
        "per_defect_type": {
            t: {"coco": _stats(d["coco"]), "yolo": _stats(d["yolo"])} for t, d in sorted(per_type.items())
        },
        "specks_dropped": report.dropped_specks,
        "instances_with_holes": report.hole_instances,
        "empty_defect_masks": report.empty_masks,
    }
