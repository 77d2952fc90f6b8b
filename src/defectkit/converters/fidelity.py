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

    IoU is of each instance's polygons re-rasterised (COCO: pycocotools.frPyObjects; YOLO: the
    normalised text re-read and drawn with cv2.fillPoly) against the instance with holes filled.
    """
    per_type: dict[str, dict[str, list[float]]] = {}
    holes: dict[str, int] = {}
    for e, r in zip(entries, results, strict=True):
        d = per_type.setdefault(e.defect_type, {"coco": [], "yolo": []}) if r.fidelity else None
        for coco_iou, yolo_iou in r.fidelity:
            d["coco"].append(coco_iou)
            d["yolo"].append(yolo_iou)
        holes[e.defect_type] = holes.get(e.defect_type, 0) + sum(i.hole_pixels for i in r.instances)
    everything = {k: [v for d in per_type.values() for v in d[k]] for k in ("coco", "yolo")}
    return {
        "overall": {k: _stats(v) for k, v in everything.items()},
        "per_defect_type": {
            t: {
                "coco": _stats(d["coco"]),
                "yolo": _stats(d["yolo"]),
                "hole_pixels_lost_in_yolo": holes.get(t, 0),
            }
            for t, d in sorted(per_type.items())
        },
        "specks_dropped": report.dropped_specks,
        "instances_with_holes": report.hole_instances,
        "hole_pixels_lost_in_yolo": report.hole_pixels_lost,
        "empty_defect_masks": report.empty_masks,
    }
