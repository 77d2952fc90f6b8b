"""Ultralytics YOLO labels: pure text builders (detect and segment), data.yaml, and a reader to COCO.

Label lines: ``class cx cy w h`` (detect) or ``class x1 y1 x2 y2 ...`` (segment), coordinates
normalised to [0, 1] by the image width/height, pixel-edge convention, one line per polygon.
Class index = COCO category id - 1. YOLO cannot express holes: the outer outline is used.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from defectkit.converters.instances import DEFAULT_MIN_AREA, DEFAULT_SIMPLIFY, Instance, mask_to_instances

YOLO_TASKS = ("segment", "detect")


def natural_name(folder_name: str) -> str:
    """Readable class name for YOLO-World prompts: ``broken_large`` -> ``broken large``."""
    return " ".join(folder_name.replace("-", " ").replace("_", " ").split())


def _fmt(values: Iterable[float]) -> str:
    # 6 significant digits: below 0.001 px error at 900 px, as ultralytics' own converters write.
    return " ".join(f"{v:.6g}" for v in values)


def _box_line(cls: int, xywh: Sequence[float], width: int, height: int) -> str:
    x, y, w, h = (float(v) for v in xywh)
    return f"{cls} {_fmt(((x + w / 2) / width, (y + h / 2) / height, w / width, h / height))}"


@functools.lru_cache(maxsize=8)
def _grid_text(size: int) -> tuple[str, ...]:
    """``_fmt`` of k / size for every pixel-corner coordinate k in 0..size (same text, ~5x faster)."""
    return tuple(f"{k / size:.6g}" for k in range(size + 1))


def _poly_line(cls: int, poly: Sequence[float], width: int, height: int) -> str:
    xs, ys = poly[0::2], poly[1::2]
    # Our own polygons: lists of ints on the pixel-corner grid inside the image.
    on_grid = isinstance(poly, list) and bool(poly) and set(map(type, poly)) == {int}
    if on_grid and min(xs) >= 0 and min(ys) >= 0 and max(xs) <= width and max(ys) <= height:
        tx, ty = _grid_text(width), _grid_text(height)
        text = [""] * len(poly)
        text[0::2] = [tx[v] for v in xs]
        text[1::2] = [ty[v] for v in ys]
        return f"{cls} {' '.join(text)}"
    xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2) / (width, height)
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
            lines += [_poly_line(class_index, p, width, height) for p in inst.polygons]
    return lines


def _outer_polygons(ann: Mapping, width: int, height: int) -> list[list[float]]:
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        return [list(p) for p in seg if len(p) >= 6]
    if isinstance(seg, dict):
        from defectkit.converters.coco import annotation_mask

        insts, _ = mask_to_instances(annotation_mask(ann, height, width), min_area=1)
        return [p for inst in insts for p in inst.polygons]
    x, y, w, h = ann["bbox"]
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def coco_to_yolo_lines(
    annotations: Iterable[Mapping], width: int, height: int, *, task: str = "segment"
) -> str:
    """COCO annotations of one image -> YOLO label file text (class = category_id - 1).

    RLE segmentations are traced to their outer outlines; a missing segmentation gives the box.
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
            lines += [_poly_line(cls, p, width, height) for p in _outer_polygons(ann, width, height)]
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

    Polygons are denormalised to pixels; ``bbox`` is the polygon's extent, ``area`` the pixel count
    of the polygon rasterised by pycocotools; category_id = class + 1; ids start at ``first_id``.
    """
    from pycocotools import mask as mask_utils

    anns = []
    for k, (cls, vals) in enumerate(parse_yolo_lines(text)):
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
