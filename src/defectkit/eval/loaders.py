"""Reading and validating prediction folders and COCO labels against the split manifest.

Every problem is an InputError naming the file and what is wrong: unknown image ids or names,
NaN/infinite scores, boxes outside the image, a score CSV missing images of a split, a COCO
file whose ids disagree with the manifest (global id = 1 + position in ``manifest.entries``).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from defectkit.datasets.split import SplitEntry, SplitManifest
from defectkit.errors import InputError
from defectkit.fileio import check_complete, read_json

log = logging.getLogger(__name__)

KINDS = ("detector", "segmenter", "classifier", "anomaly")
CSV_COLUMNS = ("image", "split", "defect_type", "label", "score")
BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (rounding of resized predictions)
META_FILE = "prediction_meta.json"


def global_ids(manifest: SplitManifest) -> dict[str, int]:
    """{entry name: COCO image id}; id = 1 + position in ``manifest.entries`` (sorted by name)."""
    return {e.name: i + 1 for i, e in enumerate(manifest.entries)}


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
    by_id = {i + 1: e for i, e in enumerate(manifest.entries)}
    for i, d in enumerate(dets):
        _check_detection(path, i, d, by_id)
    return dets


def _parse_score_row(path: Path, lineno: int, row: dict, by_name: dict[str, SplitEntry]) -> tuple[str, float]:
    name = row["image"]
    if name not in by_name:
        raise InputError(f"{path}: line {lineno}: image {name!r} is not in the split manifest")
    try:
        score = float(row["score"])
    except (TypeError, ValueError):
        raise InputError(f"{path}: line {lineno}: score {row['score']!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(f"{path}: line {lineno}: score of {name} is {row['score']} (must be finite)")
    if str(row.get("label", "")).strip() not in ("", str(by_name[name].label)):
        raise InputError(
            f"{path}: line {lineno}: label {row['label']!r} of {name} disagrees with the "
            f"split manifest ({by_name[name].label})"
        )
    return name, score


def load_image_scores(path: str | Path, manifest: SplitManifest, splits: tuple[str, ...]) -> dict[str, float]:
    """image_scores.csv as {entry name: score}; every image of ``splits`` must be present."""
    path = Path(path)
    by_name = {e.name: e for e in manifest.entries}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing_cols = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing_cols:
                raise InputError(
                    f"{path}: missing column(s) {missing_cols}; header must start {','.join(CSV_COLUMNS)}"
                )
            scores: dict[str, float] = {}
            for lineno, row in enumerate(reader, start=2):
                name, score = _parse_score_row(path, lineno, row, by_name)
                if name in scores:
                    raise InputError(f"{path}: line {lineno}: image {name} listed twice")
                scores[name] = score
    except FileNotFoundError:
        raise InputError(f"{path}: image scores not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: image scores are not UTF-8 text (byte offset {exc.start})") from None
    for split in splits:
        missing = sorted(e.name for e in manifest.subset(split) if e.name not in scores)
        if missing:
            raise InputError(
                f"{path}: {len(missing)} image(s) of the {split} split have no score (e.g. {missing[:3]})"
            )
    return scores


def load_anomaly_map(maps_dir: Path, entry: SplitEntry) -> np.ndarray:
    """anomaly_maps/<name>.npy (float) or <name>.png (16-bit, scaled to [0, 1]) as HxW float32."""
    npy, png = maps_dir / f"{entry.name}.npy", maps_dir / f"{entry.name}.png"
    if npy.is_file():
        with npy.open("rb") as fh:
            if fh.read(6) != b"\x93NUMPY":  # else numpy says "pickled data" of any random bytes
                raise InputError(f"{npy}: not a NumPy .npy array file (no .npy header)")
        try:
            amap = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{npy}: cannot read anomaly map ({exc})") from exc
        path = npy
    elif png.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            amap, path = np.asarray(Image.open(png), dtype=np.float64) / 65535.0, png
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise InputError(f"{png}: cannot read anomaly map ({exc})") from exc
    else:
        raise InputError(f"{maps_dir}: no anomaly map for {entry.name} ({npy.name} or {png.name})")
    amap = np.asarray(amap, dtype=np.float32)
    if amap.shape != (entry.height, entry.width):
        raise InputError(f"{path}: shape {amap.shape}, expected (H, W) = ({entry.height}, {entry.width})")
    if not np.all(np.isfinite(amap)):
        raise InputError(f"{path}: anomaly map holds NaN or infinite values")
    return amap


def _infer_kind(folder: Path) -> str:
    if (folder / "anomaly_maps").is_dir():
        return "anomaly"
    det = folder / "detections.json"
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
    if (folder / "detections.json").is_file():
        pred.detections = load_detections(folder / "detections.json", manifest)
    elif kind in ("detector", "segmenter"):
        raise InputError(f"{folder / 'detections.json'}: missing (needed for a {kind})")
    if (folder / "image_scores.csv").is_file():
        pred.scores = load_image_scores(folder / "image_scores.csv", manifest, splits)
    elif kind in ("classifier", "anomaly"):
        raise InputError(f"{folder / 'image_scores.csv'}: missing (needed for a {kind})")
    if (folder / "anomaly_maps").is_dir():
        pred.maps_dir = folder / "anomaly_maps"
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
