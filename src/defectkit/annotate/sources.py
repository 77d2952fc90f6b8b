"""Reading what the annotate commands draw: COCO ground truth, COCO results (detections.json)
and the images they refer to, as one small data model (:class:`Shape` per instance).

Coordinates: boxes are XYXY in pixels with pixel-edge convention (pixel (x, y) covers
[x, x+1] x [y, y+1], so a COCO box [x, y, w, h] is [x, y, x+w, y+h]); masks are HxW bool.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.errors import InputError
from defectkit.fileio import read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """One instance on one image (ground truth or prediction).

    category_id: COCO category id (1-based). box: XYXY float pixels (edge convention).
    mask: HxW bool at the image's size, or None for box-only instances.
    score: confidence in [0, 1] for predictions, None for ground truth.
    """

    category_id: int
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    score: float | None = None

    def region(self, height: int, width: int) -> np.ndarray:
        """HxW bool: the mask, or the box rasterised (pixels whose centre lies inside it)."""
        if self.mask is not None:
            return self.mask
        out = np.zeros((height, width), bool)
        x0, y0, x1, y1 = (round(v) for v in self.box)
        out[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
        return out


@dataclass(frozen=True)
class ImageInfo:
    """A COCO image record. ``name`` is a unique flat name usable as a file stem."""

    id: int
    file_name: str
    width: int
    height: int
    name: str
    defect_type: str
    label: int | None


@dataclass
class GroundTruth:
    """A loaded COCO ground-truth file (pycocotools ``COCO`` object plus our views of it)."""

    path: Path
    coco: Any  # pycocotools.coco.COCO
    images: dict[int, ImageInfo]
    categories: dict[int, str]
    dataset_root: Path | None

    def shapes(self, image_id: int) -> list[Shape]:
        """Ground-truth instances of one image, in annotation-id order."""
        info = self.images[image_id]
        anns = sorted(self.coco.imgToAnns.get(image_id, []), key=lambda a: a["id"])
        out = []
        for ann in anns:
            x, y, w, h = (float(v) for v in ann["bbox"])
            mask = self.coco.annToMask(ann).astype(bool) if ann.get("segmentation") else None
            if mask is not None and mask.shape != (info.height, info.width):
                raise InputError(
                    f"{self.path}: annotation {ann['id']} mask is {mask.shape[1]}x{mask.shape[0]}, "
                    f"image {info.id} is {info.width}x{info.height}"
                )
            out.append(Shape(int(ann["category_id"]), (x, y, x + w, y + h), mask, None))
        return out


def flat_name(file_name: str) -> str:
    """``test/broken_large/000.png`` -> ``test_broken_large_000``: a safe, unique file stem."""
    stem = os.path.splitext(file_name.replace("\\", "/"))[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.strip("/")) or "image"


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Load a COCO json (our converter's or any other) with pycocotools; InputError if unusable."""
    p = Path(path)
    data = read_json(p, "COCO ground-truth file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{p}: not a COCO file (no 'images' list)")
    for key in ("annotations", "categories"):
        data.setdefault(key, [])
    try:
        coco = quiet_coco(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: malformed COCO file ({exc!r})") from exc
    images: dict[int, ImageInfo] = {}
    for rec in data["images"]:
        try:
            fn = str(rec["file_name"])
            images[int(rec["id"])] = ImageInfo(
                id=int(rec["id"]),
                file_name=fn,
                width=int(rec["width"]),
                height=int(rec["height"]),
                name=str(rec.get("name") or flat_name(fn)),
                defect_type=str(rec.get("defect_type") or _defect_from_path(fn)),
                label=None if rec.get("label") is None else int(rec["label"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{p}: image record {rec!r:.120} lacks id/file_name/width/height") from exc
    names = [i.name for i in images.values()]
    if len(set(names)) != len(names):
        raise InputError(f"{p}: image names are not unique (two images would share one output file)")
    categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    root = (data.get("info") or {}).get("dataset")
    return GroundTruth(p, coco, dict(sorted(images.items())), categories, Path(root) if root else None)


def quiet_coco(data: dict) -> Any:
    """A pycocotools ``COCO`` built from an in-memory dict, without its prints on stdout."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _defect_from_path(file_name: str) -> str:
    parts = file_name.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else "unknown"


def resolve_image(gt: GroundTruth, info: ImageInfo, images_root: str | os.PathLike | None = None) -> Path:
    """Path of an image: ``images_root`` (or the COCO ``info.dataset``) joined with ``file_name``."""
    root = Path(images_root) if images_root else gt.dataset_root
    if root is None:
        raise InputError(f"{gt.path}: no info.dataset in the COCO file; pass --images-root DIR")
    path = root / info.file_name
    if not path.is_file():
        flag = "--images-root" if images_root else f"info.dataset of {gt.path} (or pass --images-root)"
        raise InputError(f"{path}: image {info.file_name} not found under {root} ({flag})")
    return path


def load_predictions(
    path: str | os.PathLike, gt: GroundTruth, score_threshold: float = 0.0
) -> dict[int, list[Shape]]:
    """Read a COCO results list (``detections.json``, or a prediction folder holding one).

    Returns {image_id: [Shape, ...]} sorted by descending score, for GT images only; detections
    under ``score_threshold`` are dropped, those on images not in ``gt`` are counted and ignored.
    """
    from pycocotools import mask as mask_utils

    p = Path(path)
    if p.is_dir():
        p = p / "detections.json"
    dets = read_json(p, "detections file")
    if not isinstance(dets, list):
        raise InputError(f"{p}: expected a COCO results list (JSON array of detections)")
    out: dict[int, list[Shape]] = {}
    foreign = 0
    for i, det in enumerate(dets):
        try:
            image_id, cat, score = int(det["image_id"]), int(det["category_id"]), float(det.get("score", 1.0))
            x, y, w, h = (float(v) for v in det["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{p}: detection #{i} lacks image_id/category_id/bbox ({exc!r})") from exc
        if not all(math.isfinite(v) for v in (score, x, y, w, h)):
            raise InputError(f"{p}: detection #{i} has a score or bbox that is not a finite number")
        if image_id not in gt.images:
            foreign += 1
            continue
        if score < score_threshold:
            continue
        info = gt.images[image_id]
        mask = _decode_segmentation(det.get("segmentation"), info, p, i, mask_utils)
        out.setdefault(image_id, []).append(Shape(cat, (x, y, x + w, y + h), mask, score))
    if foreign:
        log.info("%s: ignored %d detections on images not in %s", p, foreign, gt.path.name)
    return {k: sorted(v, key=lambda s: -(s.score or 0.0)) for k, v in sorted(out.items())}


def _decode_segmentation(seg: Any, info: ImageInfo, path: Path, index: int, mask_utils) -> np.ndarray | None:
    if not seg:
        return None
    try:
        if isinstance(seg, dict):
            rle = dict(seg)
            if isinstance(rle.get("counts"), list):
                rle = mask_utils.frPyObjects(rle, *rle["size"])
            elif isinstance(rle.get("counts"), str):
                rle["counts"] = rle["counts"].encode("ascii")
        else:
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, info.height, info.width))
        mask = mask_utils.decode(rle).astype(bool)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: detection #{index} has an unreadable segmentation ({exc!r})") from exc
    if mask.shape != (info.height, info.width):
        raise InputError(
            f"{path}: detection #{index} mask is {mask.shape[1]}x{mask.shape[0]}, "
            f"image {info.id} ({info.file_name}) is {info.width}x{info.height}"
        )
    return mask
