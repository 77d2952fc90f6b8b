"""The prediction-folder contract: what every ``defectkit predict ...`` writes and ``defectkit eval``
reads. One module owns it, so writers and the reader cannot drift apart::

    PRED_DIR/
      detections.json        COCO results [{image_id, category_id, bbox XYWH px, score[, segmentation RLE]}]
                             (detectors and segmenters), sorted by (image_id, -score)
      image_scores.csv       image,split,defect_type,label,score[,pred] one row per image, by name
      anomaly_maps/<name>.npy  float32 HxW at the image's original size (anomaly models)
      prediction_meta.json   {"model", "kind", "weights", "splits", "config"[, "note"]}

Image ids: the COCO image id of a split entry is 1 + its position in ``manifest.entries`` (the
manifest is sorted by name), the same id the converter writes into ``LABELS/coco/<split>.json``
(:func:`image_ids`). ``pred`` (image-level models) is 1 when the score *as written* is >= the
threshold, so ``pred`` and a threshold applied to the CSV's scores agree.

Also here: :func:`is_yolo_world_checkpoint`, the one test of whether a detector is YOLO-World
(it decides whether text embeddings are needed), read from the file, not its name.

Pure Python + numpy; imports no torch.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from defectkit.errors import InputError
from defectkit.fileio import (
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    mark_complete,
    mark_incomplete,
)

DETECTIONS = "detections.json"
IMAGE_SCORES = "image_scores.csv"
ANOMALY_MAPS = "anomaly_maps"
META_FILE = "prediction_meta.json"
KINDS = ("detector", "segmenter", "classifier", "anomaly")
SCORE_COLUMNS = ("image", "split", "defect_type", "label", "score")
PRED_COLUMN = "pred"
#: score formats: detector / segmenter confidences are in [0, 1] (6 decimals); image-level model
#: scores are unbounded (reconstruction errors of 1e-4 ... 1e2), so 8 significant digits
CONFIDENCE_FORMAT = ".6f"
SCORE_FORMAT = ".8g"


# --- image ids ---------------------------------------------------------------------------------


def image_ids(entries: Sequence[Any], key: str = "name") -> dict[Any, int]:
    """``{entry.<key>: COCO image id}``, id = 1 + position in ``entries`` (``manifest.entries``).
    ``key``: ``"name"`` (the entry's unique name) or ``"image"`` (its path relative to the data)."""
    return {getattr(e, key): i for i, e in enumerate(entries, start=1)}


def entries_by_id(entries: Sequence[Any]) -> dict[int, Any]:
    """``{COCO image id: entry}``: the inverse of :func:`image_ids`."""
    return dict(enumerate(entries, start=1))


# --- image_scores.csv --------------------------------------------------------------------------


class ScoreRow(NamedTuple):
    """One row of ``image_scores.csv``: entry name, split, defect type, label (0 good, 1 defect), score."""

    image: str
    split: str
    defect_type: str
    label: int
    score: float

    @classmethod
    def of(cls, entry: Any, score: float) -> ScoreRow:
        """The row of a split entry (``SplitEntry``: name, split, defect_type, label) with its score."""
        return cls(entry.name, entry.split, entry.defect_type, int(entry.label), float(score))


def format_image_scores(
    rows: Iterable[ScoreRow | Mapping[str, Any]], *, threshold: float | None = None, score_format: str = SCORE_FORMAT
) -> str:
    """CSV text ``image,split,defect_type,label,score`` (``,pred`` when ``threshold`` is given), one
    row per image sorted by name. ``pred`` = 1 when the written (rounded) score >= ``threshold``.
    ValueError for a NaN or infinite score."""
    rows = [r if isinstance(r, ScoreRow) else ScoreRow(**{k: r[k] for k in ScoreRow._fields}) for r in rows]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS + ((PRED_COLUMN,) if threshold is not None else ()))
    for r in sorted(rows, key=lambda r: r.image):
        if not math.isfinite(r.score):
            raise ValueError(f"{r.image}: score is {r.score}")
        text = format(float(r.score), score_format)
        cells = [r.image, r.split, r.defect_type, int(r.label), text]
        if threshold is not None:
            cells.append(int(float(text) >= threshold))
        w.writerow(cells)
    return buf.getvalue()


def _parse_score_row(path: Path, lineno: int, row: dict, by_name: Mapping[str, Any]) -> tuple[str, float]:
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


def read_image_scores(path: str | Path, manifest: Any, splits: tuple[str, ...]) -> dict[str, float]:
    """``image_scores.csv`` as ``{entry name: score}``, checked against the split manifest: known
    names, finite scores, labels that agree, no repeats, every image of ``splits`` present."""
    path = Path(path)
    by_name = {e.name: e for e in manifest.entries}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing_cols = [c for c in SCORE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing_cols:
                raise InputError(
                    f"{path}: missing column(s) {missing_cols}; header must start {','.join(SCORE_COLUMNS)}"
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


# --- anomaly_maps/ -----------------------------------------------------------------------------


def write_anomaly_map(out_dir: str | os.PathLike, name: str, amap: np.ndarray) -> Path:
    """``out_dir/anomaly_maps/<name>.npy``: ``amap`` float32 HxW at the original image size (atomic)."""
    p = ensure_dir(Path(out_dir) / ANOMALY_MAPS) / f"{name}.npy"
    with atomic_open(p, "wb") as fh:
        np.save(fh, np.ascontiguousarray(amap, dtype=np.float32))
    return p


def read_anomaly_map(maps_dir: Path, entry: Any) -> np.ndarray:
    """``anomaly_maps/<name>.npy`` (float) or ``<name>.png`` (16-bit, scaled to [0, 1]) as float32
    HxW, checked to match the entry's size and to be finite (InputError naming the file)."""
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


# --- the folder --------------------------------------------------------------------------------


def write_prediction_folder(
    out_dir: str | os.PathLike,
    meta: Mapping[str, Any],
    *,
    detections: list[dict] | None = None,
    scores: str | None = None,
) -> Path:
    """Write a prediction folder atomically, file by file: ``detections.json`` (sorted by
    ``(image_id, -score)``) when given, ``image_scores.csv`` (text from :func:`format_image_scores`)
    when given, then ``prediction_meta.json``. The folder is marked incomplete until the meta is
    written (eval refuses a marked folder); anomaly maps are written before this call."""
    if meta.get("kind") not in KINDS:
        raise ValueError(f"prediction kind {meta.get('kind')!r} is not one of {KINDS}")
    out = ensure_dir(out_dir)
    mark_incomplete(out, "defectkit predict")
    if detections is not None:
        detections = sorted(detections, key=lambda d: (d["image_id"], -d["score"]))
        atomic_write_json(out / DETECTIONS, detections, indent=None)
    if scores is not None:
        atomic_write_text(out / IMAGE_SCORES, scores)
    atomic_write_json(out / META_FILE, dict(meta))
    mark_complete(out)
    return out


# --- which detector ----------------------------------------------------------------------------


def is_yolo_world_name(model: str | os.PathLike) -> bool:
    """By name only: True for YOLO-World configs / checkpoints (``yolov8s-worldv2.yaml``, ``yolov8s-world.pt``)."""
    return "-world" in Path(model).name.lower()


def checkpoint_is_world(path: str | os.PathLike) -> bool:
    """By content: True when the ultralytics checkpoint at ``path`` holds a ``WorldModel``.

    Read from the pickle's opcodes, never by unpickling: an ultralytics ``.pt`` is trusted code
    (loading it runs what it carries), so it is only unpickled by the training itself. InputError
    for a file that is not an ultralytics checkpoint."""
    from defectkit.runtime import pickled_globals

    names = pickled_globals(path)
    if not any(n.startswith("ultralytics.") for n in names):
        raise InputError(f"{path}: not an ultralytics checkpoint (no ultralytics model inside)")
    return any(n.endswith(".WorldModel") for n in names)


def is_yolo_world_checkpoint(model: str | os.PathLike) -> bool:
    """Whether the detector ``model`` is YOLO-World (needs text embeddings), whatever its file name.

    ``model``: a ``.pt`` checkpoint, a ``.yaml`` model config, or a name from ``defectkit weights
    list``. A ``.pt`` on disk is decided by its content (:func:`checkpoint_is_world`); a ``.yaml`` on
    disk by its head (a ``WorldDetect`` layer). Only what is not a file yet (a weights name not
    fetched, an ultralytics built-in config such as ``yolov8s-worldv2.yaml``) is decided by its name.
    """
    from defectkit.weights.registry import named_path

    path = Path(model)
    if not path.is_file():
        named = named_path(model)
        path = named if named is not None else path
    if path.is_file() and path.suffix.lower() == ".pt":
        return checkpoint_is_world(path)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return "WorldDetect" in path.read_text(encoding="utf-8", errors="replace")
    return is_yolo_world_name(model)
