"""COCO detection/segmentation dicts: pure builders, a validating loader and a reader back to masks.

Boxes are XYWH in pixels; ``area`` is the mask pixel count (not the box area); ``iscrowd`` is always
0. Polygons use the pixel-edge convention (see ``converters.polygons``); instances with holes (or
every instance with ``segm="rle"``) are written as compressed RLE with ``counts`` as a str.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.converters.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_SIMPLIFY,
    Instance,
    decode_rle,
    mask_to_instances,
)
from defectkit.errors import InputError

SEGM_MODES = ("polygon", "rle")
SINGLE_CLASS_NAME = "defect"
SUPERCATEGORY = "defect"


def coco_categories(defect_types: Sequence[str], *, single_class: bool = False) -> list[dict]:
    """Categories 1..n, one per defect type in sorted order (or one "defect" category)."""
    names = [SINGLE_CLASS_NAME] if single_class else sorted(defect_types)
    return [{"id": i, "name": n, "supercategory": SUPERCATEGORY} for i, n in enumerate(names, start=1)]


def instances_to_coco_annotations(
    instances: Iterable[Instance],
    *,
    image_id: int,
    category_id: int,
    first_id: int,
    segm: str = "polygon",
    scores: Sequence[float | None] | None = None,
) -> list[dict]:
    """Instances of one image -> COCO annotation dicts with ids ``first_id, first_id+1, ...``.

    segm: "polygon" (RLE only for instances with holes) or "rle" (always RLE).
    scores: optional per-instance score, written as an extra ``score`` key (pseudo-labels).
    """
    if segm not in SEGM_MODES:
        raise ValueError(f"segm must be one of {SEGM_MODES}, got {segm!r}")
    out = []
    for k, inst in enumerate(instances):
        use_rle = segm == "rle" or inst.has_holes or not inst.polygons
        ann: dict[str, Any] = {
            "id": first_id + k,
            "image_id": int(image_id),
            "category_id": int(category_id),
            "bbox": list(inst.bbox_xywh),
            "area": inst.area,
            "iscrowd": 0,
            "segmentation": dict(inst.rle) if use_rle else inst.polygons,
        }
        if scores is not None and scores[k] is not None:
            ann["score"] = float(scores[k])
        out.append(ann)
    return out


def build_coco(
    images: list[dict], annotations: list[dict], categories: list[dict], *, info: dict | None = None
) -> dict:
    """Assemble a COCO dict (info, licenses, images, annotations, categories); no timestamps."""
    return {
        "info": {"description": "defectkit labels", "version": "1.0", **(info or {})},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def masks_to_coco(
    items: Sequence[tuple[Mapping, Sequence[tuple[int, np.ndarray, float | None]]]],
    categories: list[dict],
    *,
    segm: str = "polygon",
    min_area: int = DEFAULT_MIN_AREA,
    simplify: float = DEFAULT_SIMPLIFY,
    info: dict | None = None,
) -> dict:
    """Pure: ``[(image record, [(category_id, HxW bool mask, score|None), ...]), ...]`` -> COCO dict.

    Each image record needs ``id``, ``file_name``, ``width``, ``height`` (extra keys are kept).
    Each mask gives one instance per 8-connected component (components < ``min_area`` px dropped);
    a non-None score is written as the annotation's ``score``. Annotation ids are 1..N in input order.
    """
    images, annotations = [], []
    for record, masks in items:
        rec = dict(record)
        for key in ("id", "file_name", "width", "height"):
            if key not in rec:
                raise ValueError(f"image record needs {key!r}: {rec}")
        images.append(rec)
        for category_id, mask, score in masks:
            if mask.shape != (rec["height"], rec["width"]):
                raise ValueError(
                    f"mask {mask.shape} does not match image {rec['file_name']} size "
                    f"{rec['width']}x{rec['height']}"
                )
            insts, _ = mask_to_instances(mask, min_area=min_area, simplify=simplify)
            annotations += instances_to_coco_annotations(
                insts,
                image_id=rec["id"],
                category_id=category_id,
                first_id=len(annotations) + 1,
                segm=segm,
                scores=[score] * len(insts),
            )
    return build_coco(images, annotations, categories, info=info)


def _fail(path: str, msg: str) -> InputError:
    return InputError(f"{path}: not a valid COCO file ({msg})")


def validate_coco(coco: Any, where: str = "COCO dict") -> dict:
    """Check the structure a COCO consumer relies on; raise InputError naming ``where``."""
    if not isinstance(coco, dict):
        raise _fail(where, "top level is not an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise _fail(where, f"missing list {key!r}")
    image_ids: set[int] = set()
    for img in coco["images"]:
        if not isinstance(img, dict) or not {"id", "width", "height"} <= img.keys():
            raise _fail(where, f"image without id/width/height: {str(img)[:80]}")
        if img["id"] in image_ids:
            raise _fail(where, f"duplicate image id {img['id']}")
        image_ids.add(img["id"])
    cat_ids = {c.get("id") for c in coco["categories"] if isinstance(c, dict)}
    ann_ids: set[int] = set()
    for ann in coco["annotations"]:
        if not isinstance(ann, dict) or not {"id", "image_id", "category_id", "bbox"} <= ann.keys():
            raise _fail(where, f"annotation without id/image_id/category_id/bbox: {str(ann)[:80]}")
        if ann["id"] in ann_ids:
            raise _fail(where, f"duplicate annotation id {ann['id']}")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in image_ids:
            raise _fail(where, f"annotation {ann['id']} refers to unknown image_id {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            raise _fail(where, f"annotation {ann['id']} has unknown category_id {ann['category_id']}")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise _fail(where, f"annotation {ann['id']} bbox must be [x, y, w, h], got {bbox}")
    return coco


def load_coco(path: str | os.PathLike) -> dict:
    """Read and validate a COCO json file; InputError naming the file when unusable."""
    from defectkit.fileio import read_json

    return validate_coco(read_json(path, "COCO file"), str(path))


def annotation_mask(ann: Mapping, height: int, width: int) -> np.ndarray:
    """One COCO annotation's segmentation (polygons or RLE; box if absent) -> HxW bool."""
    from defectkit.converters.polygons import rasterize_coco

    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return decode_rle(seg)
    if isinstance(seg, list) and seg:
        return rasterize_coco([list(p) for p in seg], height, width)
    x, y, w, h = ann["bbox"]
    out = np.zeros((height, width), dtype=bool)
    out[int(round(y)) : int(round(y + h)), int(round(x)) : int(round(x + w))] = True
    return out


def coco_masks(coco: dict | str | os.PathLike) -> dict[int, list[tuple[int, np.ndarray]]]:
    """COCO dict or file -> ``{image_id: [(category_id, HxW bool mask), ...]}`` for every image
    (an empty list for images without annotations), annotations in id order."""
    data = load_coco(coco) if isinstance(coco, (str, Path, os.PathLike)) else validate_coco(coco)
    sizes = {img["id"]: (int(img["height"]), int(img["width"])) for img in data["images"]}
    out: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in sizes}
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        h, w = sizes[ann["image_id"]]
        out[ann["image_id"]].append((int(ann["category_id"]), annotation_mask(ann, h, w)))
    return out
