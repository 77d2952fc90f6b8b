"""Fixtures for the annotate tests: a COCO ground truth over the tiny synthetic test split (built
here with pycocotools so these tests do not depend on the converters), and detections with known
outcomes per image (exact match, shifted mask, miss, false positive)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectkit.datasets.io import read_mask
from defectkit.datasets.split import load_split

DEFECTS = ("broken_large", "broken_small", "contamination")


def rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def build_coco(dataset: Path, split_path: Path, split: str = "test") -> dict:
    """COCO dict for one split: one annotation per connected component of each mask (RLE)."""
    import cv2

    manifest = load_split(split_path, verify=False)
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
        if e.mask is None:
            continue
        mask = read_mask(dataset / e.mask).mask
        n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        for k in range(1, n):
            part = lab == k
            ys, xs = np.nonzero(part)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": pos + 1,
                    "category_id": DEFECTS.index(e.defect_type) + 1,
                    "bbox": [
                        int(xs.min()),
                        int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1),
                    ],
                    "area": int(part.sum()),
                    "iscrowd": 0,
                    "segmentation": rle(part),
                }
            )
    return {
        "info": {"dataset": str(dataset)},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": d, "supercategory": "defect"} for i, d in enumerate(DEFECTS)],
    }


@pytest.fixture(scope="session")
def gt_coco(tiny_dataset: Path, tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LABELS-style coco/test.json over the tiny dataset (read-only)."""
    path = tmp_path_factory.mktemp("annotate_gt") / "test.json"
    path.write_text(json.dumps(build_coco(tiny_dataset, tiny_split)))
    return path


@pytest.fixture(scope="session")
def outcomes(gt_coco: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """detections.json with a planned outcome per image, and {image name: expected status}.

    Defect images cycle through: exact GT masks (match), masks shifted by a third of their width
    (low IoU or less), no detection (miss); one good image gets a confident false positive, another
    a detection under the default score threshold (still a true negative).
    """
    from pycocotools.coco import COCO

    coco = COCO(str(gt_coco))
    dets, expected = [], {}
    defect_imgs = [i for i in coco.dataset["images"] if i["label"] == 1]
    good_imgs = [i for i in coco.dataset["images"] if i["label"] == 0]
    for k, img in enumerate(defect_imgs):
        plan = ("match", "shift", "miss")[k % 3]
        expected[img["name"]] = {"match": "match", "shift": "low_iou", "miss": "miss"}[plan]
        if plan == "miss":
            continue
        for ann in coco.imgToAnns[img["id"]]:
            m = coco.annToMask(ann).astype(bool)
            if plan == "shift":
                m = np.roll(m, max(2, ann["bbox"][2] // 2), axis=1)
            ys, xs = np.nonzero(m)
            dets.append(
                {
                    "image_id": img["id"],
                    "category_id": ann["category_id"],
                    "score": 0.9,
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ],
                    "segmentation": rle(m),
                }
            )
    fp, low = good_imgs[0], good_imgs[1]
    expected[fp["name"]] = "false_positive"
    dets.append({"image_id": fp["id"], "category_id": 3, "score": 0.8, "bbox": [5.0, 40.0, 10.0, 8.0]})
    expected[low["name"]] = "true_negative"
    dets.append({"image_id": low["id"], "category_id": 1, "score": 0.1, "bbox": [5.0, 5.0, 10.0, 10.0]})
    for img in good_imgs[2:]:
        expected[img["name"]] = "true_negative"
    dets.append({"image_id": 999999, "category_id": 1, "score": 0.9, "bbox": [0, 0, 4, 4]})  # other split
    path = tmp_path_factory.mktemp("annotate_pred") / "detections.json"
    path.write_text(json.dumps(dets))
    return path, expected
