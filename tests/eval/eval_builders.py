"""Builders for the eval tests: COCO labels by the converters' contract (made here with
pycocotools, so these tests do not depend on the converters) and prediction folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from defectkit.datasets.io import read_mask
from defectkit.datasets.split import SplitManifest
from defectkit.fileio import atomic_write_json


def rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def box_of(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def instances(manifest: SplitManifest, e) -> list[np.ndarray]:
    import cv2

    if e.mask is None:
        return []
    n, lab = cv2.connectedComponents(read_mask(manifest.mask_path(e)).mask.astype(np.uint8), connectivity=8)
    return [lab == k for k in range(1, n)]


def build_coco(manifest: SplitManifest, split: str) -> dict:
    """COCO dict for one split by the contract: global ids, one RLE annotation per component."""
    cats = list(manifest.defect_types)
    images, anns = [], []
    for pos, e in enumerate(manifest.entries):
        if e.split != split:
            continue
        images.append(
            {
                "id": pos + 1,
                "file_name": e.image,
                "width": e.width,
                "height": e.height,
                "name": e.name,
                "defect_type": e.defect_type,
                "label": e.label,
                "split": e.split,
            }
        )
        for part in instances(manifest, e):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": pos + 1,
                    "category_id": cats.index(e.defect_type) + 1,
                    "bbox": box_of(part),
                    "area": int(part.sum()),
                    "iscrowd": 0,
                    "segmentation": rle(part),
                }
            )
    return {
        "info": {"dataset": str(manifest.dataset)},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": d, "supercategory": "defect"} for i, d in enumerate(cats)],
    }


def write_pred(
    folder: Path,
    kind: str,
    manifest: SplitManifest,
    *,
    scores: dict[str, float] | None = None,
    dets: list[dict] | None = None,
    maps: dict[str, np.ndarray] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        folder / "prediction_meta.json",
        {
            "model": folder.name,
            "kind": kind,
            "weights": f"/weights/{folder.name}.pt",
            "splits": ["val", "test"],
            "config": {"imgsz": 64},
        },
    )
    if dets is not None:
        atomic_write_json(folder / "detections.json", dets)
    if scores is not None:
        with (folder / "image_scores.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "split", "defect_type", "label", "score"])
            for e in manifest.entries:
                if e.name in scores:
                    w.writerow([e.name, e.split, e.defect_type, e.label, repr(scores[e.name])])
    if maps is not None:
        (folder / "anomaly_maps").mkdir(exist_ok=True)
        for name, m in maps.items():
            np.save(folder / "anomaly_maps" / f"{name}.npy", m.astype(np.float32))
    return folder


def dets_from_gt(manifest: SplitManifest, *, score: float, with_masks: bool) -> list[dict]:
    cats = list(manifest.defect_types)
    dets = []
    for pos, e in enumerate(manifest.entries):
        if e.split == "train":
            continue
        for part in instances(manifest, e):
            d = {
                "image_id": pos + 1,
                "category_id": cats.index(e.defect_type) + 1,
                "bbox": box_of(part),
                "score": score,
            }
            if with_masks:
                d["segmentation"] = rle(part)
            dets.append(d)
    return dets


def write_labels(manifest: SplitManifest, out: Path) -> Path:
    """LABELS/coco/{train,val,test}.json for ``manifest``."""
    for split in ("train", "val", "test"):
        atomic_write_json(out / "coco" / f"{split}.json", build_coco(manifest, split))
    return out
