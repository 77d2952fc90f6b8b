"""Reading and validating prediction folders and COCO labels against the split manifest.

Every problem is an InputError naming the file and what is wrong: unknown image ids or names,
NaN/infinite scores, boxes outside the image, a score CSV missing images of a split, a COCO
file whose ids disagree with the manifest (global id = 1 + position in ``manifest.entries``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from defectkit.datasets.split import SplitEntry, SplitManifest
from defectkit.errors import InputError
from defectkit.fileio import check_complete, read_json
from defectkit.predictions import (
    ANOMALY_MAPS,
    DETECTIONS,
    IMAGE_SCORES,
    KINDS,
    META_FILE,
    SCORE_COLUMNS,
    entries_by_id,
    image_ids,
)
from defectkit.predictions import read_anomaly_map as load_anomaly_map
from defectkit.predictions import read_image_scores as load_image_scores

log = logging.getLogger(__name__)

__all__ = ["KINDS", "META_FILE", "load_anomaly_map", "load_image_scores"]  # re-exported from defectkit.predictions
CSV_COLUMNS = SCORE_COLUMNS
BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (rounding of resized predictions)


def global_ids(manifest: SplitManifest) -> dict[str, int]:
    """{entry name: COCO image id}; id = 1 + position in ``manifest.entries`` (sorted by name),
    the contract's rule (:func:`defectkit.predictions.image_ids`)."""
    return image_ids(manifest.entries)


def load_coco_labels(labels_dir: str | Path, split: str, manifest: SplitManifest) -> dict:
    """LABELS/coco/<split>.json, checked to list exactly the split's images under their global ids."""
    path = Path(labels_dir) / "coco" / f"{split}.json"
    check_complete(path)
    gt = read_json(path, "COCO labels")
    if not isinstance(gt, dict) or not all(k in gt for k in ("images", "annotations", "categories")):
        raise InputError(f"{path}: not a COCO dataset (needs images, annotations, categories)")
    ids = global_ids(manifest)
    want = {e.name for e in manifest.subset(split)}
    seen = set()
    for img in gt["images"]:
        name = img.get("name")
        if name in seen:
            raise InputError(f"{path}: image {name!r} is listed more than once (two COCO images, one id)")
        if name not in ids:
            raise InputError(f"{path}: image {img.get('id')} ({name!r}) is not in the split manifest")
        if img.get("id") != ids[name]:
            raise InputError(
                f"{path}: image {name!r} has id {img.get('id')}, the split manifest gives "
                f"{ids[name]} (labels made from another split? run 'defectkit convert' again)"
            )
        seen.add(name)
    if seen != want:
        diff = sorted(want ^ seen)
        raise InputError(
            f"{path}: images differ from the manifest's {split} split ({len(diff)} names, e.g. {diff[:3]})"
        )
    return gt


@dataclass
class PredictionSet:
    """One model's predictions. detections: COCO results (validated) or None; scores:
    {entry name: image score} or None; maps_dir: folder of anomaly maps or None."""

    name: str
    folder: Path
    kind: str
    meta: dict = field(default_factory=dict)
    detections: list[dict] | None = None
    scores: dict[str, float] | None = None
    maps_dir: Path | None = None
    splits: tuple[str, ...] = ("val", "test")


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_detection(path: Path, i: int, d: object, by_id: dict[int, SplitEntry]) -> None:
    if not isinstance(d, dict):
        raise InputError(f"{path}: entry {i} is not an object")
    where = f"{path}: entry {i}"
    if d.get("image_id") not in by_id:
        raise InputError(f"{where}: image_id {d.get('image_id')!r} is not in the split manifest")
    e = by_id[d["image_id"]]
    if not isinstance(d.get("category_id"), int):
        raise InputError(f"{where}: category_id must be an integer, got {d.get('category_id')!r}")
    if not _finite(d.get("score")):
        raise InputError(f"{where}: score must be a finite number, got {d.get('score')!r}")
    box = d.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
        raise InputError(f"{where}: bbox must be [x, y, w, h] finite numbers, got {box!r}")
    x, y, w, h = box
    t = BOX_TOLERANCE
    if w < 0 or h < 0 or x < -t or y < -t or x + w > e.width + t or y + h > e.height + t:
        raise InputError(f"{where}: bbox {box} (XYWH) lies outside image {e.name} ({e.width}x{e.height})")
    seg = d.get("segmentation")
    if seg is not None and not (isinstance(seg, dict) and list(seg.get("size", [])) == [e.height, e.width]):
        raise InputError(f"{where}: segmentation must be an RLE of size [{e.height}, {e.width}] for {e.name}")


def load_detections(path: str | Path, manifest: SplitManifest) -> list[dict]:
    """detections.json (COCO results list) validated against the manifest's images."""
    path = Path(path)
    dets = read_json(path, "detections")
    if not isinstance(dets, list):
        raise InputError(f"{path}: must be a JSON list of COCO results")
    by_id = entries_by_id(manifest.entries)
    for i, d in enumerate(dets):
        _check_detection(path, i, d, by_id)
    return dets


def _infer_kind(folder: Path) -> str:
    if (folder / ANOMALY_MAPS).is_dir():
        return "anomaly"
    det = folder / DETECTIONS
    if det.is_file():
        dets = read_json(det, "detections")
        return "segmenter" if any(isinstance(d, dict) and "segmentation" in d for d in dets) else "detector"
    return "classifier"


def load_prediction_folder(name: str, folder: str | Path, manifest: SplitManifest) -> PredictionSet:
    """Read one PRED_DIR (detections.json, image_scores.csv, anomaly_maps/, prediction_meta.json)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--pred {name}={folder}: not a folder")
    check_complete(folder, levels=0)
    meta_path = folder / META_FILE
    if meta_path.is_file():
        meta = read_json(meta_path, "prediction meta")
        if not isinstance(meta, dict):
            raise InputError(f"{meta_path}: must be a JSON object")
    else:
        meta = {}
        log.warning("%s: no %s; the model kind is guessed from the files", folder, META_FILE)
    kind = meta.get("kind") or _infer_kind(folder)
    if kind not in KINDS:
        raise InputError(f"{meta_path}: kind {kind!r} is not one of {KINDS}")
    splits = tuple(s for s in meta.get("splits", ("val", "test")) if s in ("val", "test"))
    if "test" not in splits:
        raise InputError(f"{meta_path}: predictions must cover the test split (splits: {list(splits)})")
    pred = PredictionSet(name=name, folder=folder, kind=kind, meta=meta, splits=splits)
    if (folder / DETECTIONS).is_file():
        pred.detections = load_detections(folder / DETECTIONS, manifest)
    elif kind in ("detector", "segmenter"):
        raise InputError(f"{folder / DETECTIONS}: missing (needed for a {kind})")
    if (folder / IMAGE_SCORES).is_file():
        pred.scores = load_image_scores(folder / IMAGE_SCORES, manifest, splits)
    elif kind in ("classifier", "anomaly"):
        raise InputError(f"{folder / IMAGE_SCORES}: missing (needed for a {kind})")
    if (folder / ANOMALY_MAPS).is_dir():
        pred.maps_dir = folder / ANOMALY_MAPS
    return pred


def discover_predictions(run_dirs: list[str | Path]) -> list[tuple[str, Path]]:
    """(name, PRED_DIR) for every folder holding prediction_meta.json in or below the run folders
    (up to two levels: RUN/, RUN/predictions/, RUN/<x>/predictions/). The name is the meta's
    "model" or else the run folder's name; repeated names get the folder name appended."""
    found: list[tuple[str, Path]] = []
    for run in run_dirs:
        run = Path(run)
        if not run.exists():
            raise InputError(f"--runs {run}: no such folder")
        if not run.is_dir():  # `--runs runs/*` also expands to runs/split.json
            log.debug("--runs %s: not a folder (skipped)", run)
            continue
        metas = sorted({*run.glob(META_FILE), *run.glob(f"*/{META_FILE}"), *run.glob(f"*/*/{META_FILE}")})
        if not metas:
            log.info("--runs %s: no %s (skipped)", run, META_FILE)
        for meta_path in metas:
            meta = read_json(meta_path, "prediction meta")
            name = (meta.get("model") if isinstance(meta, dict) else None) or run.name
            found.append((str(name), meta_path.parent))
    names = [n for n, _ in found]
    return [(n if names.count(n) == 1 else f"{n} ({p.parent.name}/{p.name})", p) for n, p in found]
