"""Ultralytics YOLO labels: pure text builders (detect and segment), data.yaml, and a reader to COCO.

Label lines: ``class cx cy w h`` (detect) or ``class x1 y1 x2 y2 ...`` (segment), coordinates
normalised to [0, 1] by the image width/height, one line per polygon. Segment polygons run through
the centres of the boundary pixels (pixel x at ``(x + 0.5) / width``), with holes joined by a
zero-width cut, so ultralytics' ``cv2.fillPoly`` reproduces each mask exactly
(:mod:`defectkit.converters.centre_polygons`). Class index = COCO category id - 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from defectkit.converters.centre_polygons import EDGE_MARGIN, outward_positions
from defectkit.converters.instances import DEFAULT_MIN_AREA, DEFAULT_SIMPLIFY, Instance, mask_to_instances

YOLO_TASKS = ("segment", "detect")


def natural_name(folder_name: str) -> str:
    """Readable class name for YOLO-World prompts: ``broken_large`` -> ``broken large``; a whole-dataset
    class ``bottle/broken_large`` -> ``bottle broken large`` ("/" separates synonyms for YOLO-World)."""
    return " ".join(folder_name.replace("/", " ").replace("-", " ").replace("_", " ").split())


def _fmt(values: Iterable[float]) -> str:
    # 6 significant digits: below 0.001 px error at 900 px, as ultralytics' own converters write.
    return " ".join(f"{v:.6g}" for v in values)


def _box_line(cls: int, xywh: Sequence[float], width: int, height: int) -> str:
    x, y, w, h = (float(v) for v in xywh)
    return f"{cls} {_fmt(((x + w / 2) / width, (y + h / 2) / height, w / width, h / height))}"


@functools.lru_cache(maxsize=256)
def _pixel_text(size: int, offset: float) -> np.ndarray:
    """``_fmt`` of (k + offset) / size for every pixel k in 0..size-1, as an object array (a vertex's
    place in its pixel is one of a dozen offsets: each table is built once per image size)."""
    return np.array([f"{(k + offset) / size:.6g}" for k in range(size)], dtype=object)


def _axis_text(pos: np.ndarray, size: int) -> np.ndarray:
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    out = np.empty(len(pos), dtype=object)
    for offset in np.unique(frac).tolist():
        at = frac == offset
        out[at] = _pixel_text(size, offset)[base[at]]
    return out


def _poly_line(cls: int, poly: Sequence[int], width: int, height: int) -> str:
    """A segment row from a polygon on the pixel-centre grid (integer x = pixel column x), each vertex
    written inside its pixel by :func:`outward_positions` (ultralytics truncates it back to x)."""
    grid = np.asarray(poly, dtype=np.int64).reshape(-1, 2)
    pos = outward_positions(np.clip(grid, 0, (width - 1, height - 1)))
    text = np.empty(2 * len(pos), dtype=object)
    text[0::2] = _axis_text(pos[:, 0], width)
    text[1::2] = _axis_text(pos[:, 1], height)
    return f"{cls} {' '.join(text.tolist())}"


def _box_row(cls: int, xywh: Sequence[float], width: int, height: int) -> str:
    """A segment row for an annotation without segmentation: its box, in from the edges by EDGE_MARGIN."""
    x, y, w, h = (float(v) for v in xywh)
    x0, y0, x1, y1 = x + EDGE_MARGIN, y + EDGE_MARGIN, x + w - EDGE_MARGIN, y + h - EDGE_MARGIN
    xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) / (width, height)
    return f"{cls} {_fmt(np.clip(xy, 0.0, 1.0).reshape(-1).tolist())}"


def instances_to_yolo_lines(
    instances: Iterable[Instance], class_index: int, width: int, height: int, *, task: str = "segment"
) -> list[str]:
    """Instances of one image -> YOLO label lines (one per polygon for segment, per box for detect)."""
    if task not in YOLO_TASKS:
        raise ValueError(f"task must be one of {YOLO_TASKS}, got {task!r}")
    lines = []
    for inst in instances:
        if task == "detect":
            lines.append(_box_line(class_index, inst.bbox_xywh, width, height))
        else:
            lines += [_poly_line(class_index, p, width, height) for p in inst.yolo_polygons]
    return lines


def _segment_rows(cls: int, ann: Mapping, width: int, height: int) -> list[str]:
    """Segment rows of a COCO annotation: its mask (polygons rasterised by pycocotools, or RLE)
    traced through its boundary pixels again; without a segmentation, its box."""
    if not ann.get("segmentation"):
        return [_box_row(cls, ann["bbox"], width, height)]
    from defectkit.converters.coco import annotation_mask

    insts, _ = mask_to_instances(annotation_mask(ann, height, width), min_area=1, per_image=True)
    return [_poly_line(cls, p, width, height) for inst in insts for p in inst.yolo_polygons]


def coco_to_yolo_lines(
    annotations: Iterable[Mapping], width: int, height: int, *, task: str = "segment"
) -> str:
    """COCO annotations of one image -> YOLO label file text (class = category_id - 1).

    Each segmentation (polygons or RLE) is rasterised and traced through its boundary pixels'
    centres (holes kept); a missing segmentation gives the box.
    Returns "" for an image without annotations (an empty label file = background).
    """
    if task not in YOLO_TASKS:
        raise ValueError(f"task must be one of {YOLO_TASKS}, got {task!r}")
    lines = []
    for ann in annotations:
        cls = int(ann["category_id"]) - 1
        if task == "detect":
            lines.append(_box_line(cls, ann["bbox"], width, height))
        else:
            lines += _segment_rows(cls, ann, width, height)
    return "".join(line + "\n" for line in lines)


def masks_to_yolo_lines(
    masks: Iterable[tuple[int, np.ndarray, float | None]],
    width: int,
    height: int,
    *,
    task: str = "segment",
    min_area: int = DEFAULT_MIN_AREA,
    simplify: float = DEFAULT_SIMPLIFY,
) -> str:
    """Pure: ``[(category_id, HxW bool mask, score|None), ...]`` of one image -> YOLO label text.

    Scores are not representable in YOLO labels and are ignored.
    """
    lines = []
    for category_id, mask, _score in masks:
        insts, _ = mask_to_instances(mask, min_area=min_area, simplify=simplify)
        lines += instances_to_yolo_lines(insts, int(category_id) - 1, width, height, task=task)
    return "".join(line + "\n" for line in lines)


def parse_yolo_lines(text: str) -> list[tuple[int, np.ndarray]]:
    """YOLO label text -> ``[(class, values)]``; values: 4 floats (detect) or 2K floats (segment).

    Raises ValueError naming the line for malformed rows.
    """
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, vals = int(parts[0]), np.array([float(v) for v in parts[1:]], dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"line {n}: not numbers ({exc})") from exc
        if len(vals) != 4 and (len(vals) < 6 or len(vals) % 2):
            raise ValueError(f"line {n}: expected 4 box values or >= 3 x,y pairs, got {len(vals)} values")
        out.append((cls, vals))
    return out


def yolo_segment_to_coco(
    text: str, *, width: int, height: int, image_id: int, first_id: int = 1
) -> list[dict]:
    """YOLO label text (segment or detect rows) of one image -> COCO annotation dicts.

    A segment row is rasterised as ultralytics reads it (:func:`fillpoly_raster`) and written as that
    mask's COCO annotation (pixel-edge polygons, RLE when it has holes; exact ``area`` and box).
    A detect row (or a polygon that covers no pixel) gives its extent as the polygon, ``area`` the
    pixel count pycocotools rasterises. category_id = class + 1; ids start at ``first_id``.
    """
    from pycocotools import mask as mask_utils

    from defectkit.converters.centre_polygons import fillpoly_raster
    from defectkit.converters.coco import instances_to_coco_annotations

    anns = []
    for k, (cls, vals) in enumerate(parse_yolo_lines(text)):
        if len(vals) > 4:
            mask = fillpoly_raster([vals.reshape(-1, 2) * (width, height)], height, width)
            insts, _ = mask_to_instances(mask, min_area=1, per_image=True, simplify=0)
            if insts:
                anns += instances_to_coco_annotations(insts, image_id=image_id, category_id=cls + 1,
                                                      first_id=first_id + k)
                continue
        if len(vals) == 4:
            cx, cy, w, h = vals * (width, height, width, height)
            x0, y0 = cx - w / 2, cy - h / 2
            poly = [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]
        else:
            poly = (vals.reshape(-1, 2) * (width, height)).reshape(-1).tolist()
        poly = [round(v, 4) for v in poly]
        xy = np.asarray(poly).reshape(-1, 2)
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        area = int(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([poly], height, width))))
        anns.append(
            {
                "id": first_id + k,
                "image_id": int(image_id),
                "category_id": cls + 1,
                "bbox": [
                    round(float(x0), 4),
                    round(float(y0), 4),
                    round(float(x1 - x0), 4),
                    round(float(y1 - y0), 4),
                ],
                "area": area,
                "iscrowd": 0,
                "segmentation": [poly],
            }
        )
    return anns


def data_yaml(root: str, names: Mapping[int, str], splits: Sequence[str] = ("train", "val", "test")) -> str:
    """Ultralytics data.yaml text: absolute ``path``, ``<split>: images/<split>``, ``nc`` and ``names``.

    Strings are written JSON-quoted (valid YAML), so names with spaces or ':' survive.
    """
    lines = [f"path: {json.dumps(str(root))}"]
    lines += [f"{s}: images/{s}" for s in splits]
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines += [f"  {i}: {json.dumps(names[i], ensure_ascii=False)}" for i in sorted(names)]
    return "\n".join(lines) + "\n"
