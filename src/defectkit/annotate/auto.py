"""``defectkit annotate auto``: model-assisted labelling. Boxes (from a YOLO-World detector or a
COCO file of human-drawn boxes) are turned into SAM masks and written through the converters as
COCO (with scores) and YOLO segment labels, plus a review gallery.

Output folder::

    OUT/coco.json                 COCO labels; file_name relative to --images, info.dataset = --images,
                                  one annotation per mask component, ``score`` = box score x SAM IoU
    OUT/boxes.json                the prompt boxes as a COCO results list (what SAM was given)
    OUT/yolo/images/<name><ext>   copies of the images (so OUT/yolo is a dataset ultralytics reads)
    OUT/yolo/labels/<name>.txt    segment labels (class = category id - 1; empty file = no defect)
    OUT/yolo/data.yaml            train and val both pointing at images/
    OUT/gallery.html              labels (outlines) against prompt boxes (fills), worst agreement first
    OUT/auto_config.json          resolved config, counts and library versions
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from defectkit.annotate.prompts import BoxPrompt
from defectkit.annotate.sources import flat_name
from defectkit.errors import InputError
from defectkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_dir
from defectkit.progress import progress

log = logging.getLogger(__name__)

FORMATS = ("coco", "yolo")
MASK_FOLDER = "ground_truth"


@dataclass(frozen=True)
class AutoConfig:
    """Settings of one auto-labelling run (paths as given by the user).

    Exactly one box source: ``boxes`` (COCO file: images[].file_name relative to ``images``,
    annotations[].bbox XYWH pixels, optional annotations[].score) or ``detector`` (YOLO-World
    weights; optional ``text_embeddings`` re-applies its class features from that file). conf: boxes
    scoring below it are ignored. max_det: most detector boxes per image. box_margin: each mask
    is cut to its box grown by this fraction of the box's width/height on every side (a box prompt
    says where the object is; SAM's stray blobs elsewhere are not part of it). min_area: mask
    components under this many pixels are dropped; a box left with no mask is dropped and counted.
    """

    images: str
    output: str
    sam: str
    model_type: str = "vit_b"
    boxes: str | None = None
    detector: str | None = None
    text_embeddings: str | None = None
    conf: float = 0.25
    max_det: int = 100
    min_area: int = 10
    box_margin: float = 0.1
    formats: tuple[str, ...] = FORMATS
    device: str | None = None
    gallery: bool = True

    def __post_init__(self) -> None:
        if (self.boxes is None) == (self.detector is None):
            raise ValueError("give exactly one of --boxes BOXES.json and --detector BEST.pt")
        if self.text_embeddings is not None and self.detector is None:
            raise ValueError("--text-embeddings goes with --detector")
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be in [0, 1], got {self.conf}")
        if self.max_det < 1:
            raise ValueError(f"--max-det must be >= 1, got {self.max_det}")
        if self.box_margin < 0:
            raise ValueError(f"--box-margin must be >= 0, got {self.box_margin}")
        if self.min_area < 0:
            raise ValueError(f"--min-area must be >= 0, got {self.min_area}")
        if not self.formats or not set(self.formats) <= set(FORMATS):
            raise ValueError(f"--to must name formats among {FORMATS}, got {self.formats}")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder`` (recursive, skipping ``ground_truth/`` mask folders), as sorted
    POSIX paths relative to it."""
    from defectkit.datasets.io import is_image_file

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: --images folder not found")
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if is_image_file(p))
    # An MVTec category folder holds its masks too: they are labels, not images to label.
    found = [p for p in found if MASK_FOLDER not in p.split("/")[:-1]]
    if not found:
        raise InputError(f"{root}: no image files (png, jpg, bmp, tif) in --images folder")
    return found


def read_box_file(
    path: str | os.PathLike, images: list[str]
) -> tuple[list[dict], dict[str, list[BoxPrompt]]]:
    """Read a COCO file of boxes -> (categories renumbered 1..n in id order, {relative path: prompts}).

    Only images the file lists are returned (an image listed without boxes gets an empty list).
    """
    from defectkit.converters.coco import load_coco

    coco = load_coco(path)
    known = set(images)
    remap = {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]), start=1)}
    categories = [
        {"id": remap[c["id"]], "name": str(c.get("name", c["id"])), "supercategory": "defect"}
        for c in sorted(coco["categories"], key=lambda c: c["id"])
    ]
    by_id: dict[int, str] = {}
    out: dict[str, list[BoxPrompt]] = {}
    for img in coco["images"]:
        rel = str(img.get("file_name", "")).replace("\\", "/")
        if rel not in known:
            raise InputError(f"{path}: image {rel!r} (id {img['id']}) is not in the --images folder")
        by_id[img["id"]] = rel
        out[rel] = []
    for ann in sorted(coco["annotations"], key=lambda a: a["id"]):
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            raise InputError(f"{path}: annotation {ann['id']} has an empty box {ann['bbox']}")
        score = float(ann.get("score", 1.0))
        out[by_id[ann["image_id"]]].append(BoxPrompt(remap[ann["category_id"]], (x, y, x + w, y + h), score))
    return categories, dict(sorted(out.items()))


@dataclass
class Counts:
    """What happened to the boxes: kept, dropped for an empty mask, dropped for --min-area."""

    boxes: int = 0
    kept: int = 0
    dropped_no_mask: int = 0
    dropped_small: int = 0


def select_masks(prompts: list[BoxPrompt], masks: np.ndarray, min_area: int, counts: Counts) -> list[tuple]:
    """Turn each prompt's mask (NxHxW bool) into converter instances; drop (and count) boxes whose
    mask is empty or has no component of at least ``min_area`` pixels.

    Returns ``[(prompt, [Instance, ...]), ...]`` (one instance per kept 8-connected component);
    ``prompt.score`` is the score the instances are written with.
    """
    from defectkit.converters.instances import mask_to_instances

    kept = []
    for prompt, mask in zip(prompts, masks, strict=True):
        counts.boxes += 1
        if not mask.any():
            counts.dropped_no_mask += 1
            continue
        instances, _specks = mask_to_instances(mask, min_area=min_area)
        if not instances:
            counts.dropped_small += 1
            continue
        counts.kept += 1
        kept.append((prompt, instances))
    return kept


def clip_to_boxes(masks: np.ndarray, boxes: np.ndarray, margin: float) -> np.ndarray:
    """Cut NxHxW bool masks to their Nx4 XYXY pixel boxes grown by ``margin`` x box size per side."""
    out = np.zeros_like(masks)
    h, w = masks.shape[1:]
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        c0, r0 = max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my)))
        c1, r1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
        out[k, r0:r1, c0:c1] = masks[k, r0:r1, c0:c1]
    return out


def label_image(record: dict, kept: list[tuple], first_id: int) -> tuple[list[dict], str]:
    """COCO annotations (ids from ``first_id``, with scores) and YOLO segment label text of one image."""
    from defectkit.converters.coco import instances_to_coco_annotations
    from defectkit.converters.yolo import instances_to_yolo_lines

    anns: list[dict] = []
    lines: list[str] = []
    for prompt, instances in kept:
        anns += instances_to_coco_annotations(
            instances,
            image_id=record["id"],
            category_id=prompt.category_id,
            first_id=first_id + len(anns),
            scores=[prompt.score] * len(instances),
        )
        lines += instances_to_yolo_lines(instances, prompt.category_id - 1, record["width"], record["height"])
    return anns, "".join(line + "\n" for line in lines)


def box_results(image_id: int, boxes: list[BoxPrompt]) -> list[dict]:
    """Prompt boxes as COCO results (bbox XYWH pixels)."""
    return [
        {
            "image_id": image_id,
            "category_id": b.category_id,
            "score": round(b.score, 5),
            "bbox": [round(v, 3) for v in (b.box[0], b.box[1], b.box[2] - b.box[0], b.box[3] - b.box[1])],
        }
        for b in boxes
    ]


def _segmenter(cfg: AutoConfig):
    """``segment(image HWC uint8, boxes Nx4 XYXY) -> (NxHxW bool masks, N predicted IoU)`` with the
    SAM of ``cfg``."""
    import torch

    from defectkit.finetune.sam.model import build_sam_model
    from defectkit.finetune.sam.predict import predict_masks
    from defectkit.runtime import resolve_device

    sam = build_sam_model(cfg.model_type, cfg.sam).to(resolve_device(cfg.device)).eval()

    def segment(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return np.zeros((0, *image.shape[:2]), bool), np.zeros(0, np.float32)
        with torch.no_grad():
            masks, iou = predict_masks(sam, image, boxes)
        return np.asarray(masks, bool), np.asarray(iou, np.float32).reshape(-1)

    return segment


def _box_source(cfg: AutoConfig, images: list[str]) -> tuple[list[dict], dict[str, list[BoxPrompt]], object]:
    """(categories, {rel: prompts} for box files, detector or None)."""
    if cfg.boxes is not None:
        categories, prompts = read_box_file(cfg.boxes, images)
        skipped = len(images) - len(prompts)
        if skipped:
            log.info("%d image(s) in %s are not listed in %s; not labelled", skipped, cfg.images, cfg.boxes)
        return categories, prompts, None
    from defectkit.annotate.detect import load_detector

    detector = load_detector(cfg.detector, cfg.text_embeddings, cfg.conf, cfg.max_det, cfg.device)
    categories = [
        {"id": i, "name": n, "supercategory": "defect"} for i, n in enumerate(detector.names, start=1)
    ]
    return categories, {rel: [] for rel in images}, detector


def run_auto(cfg: AutoConfig) -> dict:
    """Label the images of ``cfg.images``; write the outputs listed in the module docstring.

    Masks live one image at a time; only instances (RLE + polygons) are kept across images.
    Returns a summary: images, instances (COCO annotations), boxes, kept, dropped_no_mask, dropped_small.
    """
    from defectkit.datasets.io import read_image

    root = Path(cfg.images)
    images = list_images(root)
    categories, prompts, detector = _box_source(cfg, images)
    segment = _segmenter(cfg)
    out = ensure_dir(cfg.output)
    counts, records, annotations, labels, results = Counts(), [], [], {}, []
    for image_id, rel in enumerate(progress(list(prompts), desc="auto-label"), start=1):
        image = read_image(root / rel)
        record = {
            "id": image_id,
            "file_name": rel,
            "width": image.shape[1],
            "height": image.shape[0],
            "name": flat_name(rel),
        }
        boxes = detector.detect(image) if detector is not None else prompts[rel]
        boxes = [b for b in boxes if b.score >= cfg.conf]
        xyxy = np.array([b.box for b in boxes], np.float32).reshape(-1, 4)
        masks, iou = segment(image, xyxy)
        masks = clip_to_boxes(masks, xyxy, cfg.box_margin)
        # as in `predict sam`: a label's score = box score x SAM's predicted IoU (clipped to [0, 1])
        scored = [
            replace(b, score=min(1.0, max(0.0, b.score * float(q)))) for b, q in zip(boxes, iou, strict=True)
        ]
        anns, labels[rel] = label_image(
            record, select_masks(scored, masks, cfg.min_area, counts), len(annotations) + 1
        )
        records.append(record)
        annotations += anns
        results += box_results(image_id, boxes)
    atomic_write_json(out / "boxes.json", results)
    _write_labels(cfg, out, records, annotations, labels, categories)
    summary = {"images": len(records), "instances": len(annotations), **asdict(counts)}
    _write_config(out, cfg, summary)
    if cfg.gallery:
        _write_review(out, cfg)
    log.info(
        "auto-labelled %d images: %d instances from %d boxes (%d without mask, %d under --min-area)",
        summary["images"],
        summary["instances"],
        counts.boxes,
        counts.dropped_no_mask,
        counts.dropped_small,
    )
    return summary


def _write_labels(
    cfg: AutoConfig, out: Path, records: list[dict], annotations: list[dict], labels: dict[str, str],
    categories: list[dict],
) -> None:
    """``coco.json`` and/or ``yolo/`` (as ``cfg.formats`` asks) of the labelled images."""
    from defectkit.converters.coco import build_coco

    root = Path(cfg.images)
    if "coco" in cfg.formats:
        coco = build_coco(
            records,
            annotations,
            categories,
            info={"dataset": str(root.resolve()), "description": "defectkit annotate auto labels"},
        )
        atomic_write_json(out / "coco.json", coco)
    if "yolo" in cfg.formats:
        _write_yolo(out / "yolo", root, records, labels, categories)


def _write_yolo(
    folder: Path, root: Path, records: list[dict], labels: dict[str, str], categories: list[dict]
) -> None:
    """YOLO segment label files, image copies and a data.yaml (names in natural language)."""
    from defectkit.converters.yolo import data_yaml, natural_name

    for rec in records:
        stem, ext = rec["name"], Path(rec["file_name"]).suffix.lower()
        atomic_write_text(folder / "labels" / f"{stem}.txt", labels[rec["file_name"]])
        atomic_write_bytes(folder / "images" / f"{stem}{ext}", (root / rec["file_name"]).read_bytes())
    names = {c["id"] - 1: natural_name(c["name"]) for c in categories}
    atomic_write_text(
        folder / "data.yaml",
        data_yaml(str(folder.resolve()), names, splits=()) + "train: images\nval: images\n",
    )


def _write_config(out: Path, cfg: AutoConfig, summary: dict) -> None:
    from defectkit.runtime import library_versions

    resolved = {**asdict(cfg), "images": str(Path(cfg.images).resolve()), "formats": list(cfg.formats)}
    atomic_write_json(
        out / "auto_config.json", {"config": resolved, "summary": summary, "versions": library_versions()}
    )


def _write_review(out: Path, cfg: AutoConfig) -> None:
    """Gallery of the new labels (outlines) against the prompt boxes (fills); needs coco.json."""
    from defectkit.annotate.gallery import GalleryConfig, write_gallery
    from defectkit.annotate.review import OverlayConfig

    if "coco" not in cfg.formats:
        log.info("no gallery: it is drawn from coco.json, which --to did not ask for")
        return
    ov = OverlayConfig(
        coco=str(out / "coco.json"),
        output="",
        pred=str(out / "boxes.json"),
        images_root=cfg.images,
        score_threshold=cfg.conf,
    )
    write_gallery(
        GalleryConfig(overlay=ov, html=str(out / "gallery.html"), title="defectkit auto labels"),
        subtitle="Outlines: SAM labels. Fills: the boxes SAM was prompted with. Low IoU = the mask "
        "fills its box poorly; 'false positive' = a box whose mask was dropped.",
    )
