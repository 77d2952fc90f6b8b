"""``defectkit predict yolo-world``: an ultralytics detector checkpoint -> COCO results + image scores.

Writes, atomically, into PRED_DIR::

    detections.json        COCO results: image_id (global id), category_id (= YOLO class + 1),
                           bbox XYWH in pixels of the original image, score
    image_scores.csv       image,split,defect_type,label,score (max box score, 0 without boxes), by name
    prediction_meta.json   {"model", "kind": "detector", "weights", "splits", "config"}

Works for YOLO-World checkpoints (text features are inside the checkpoint; no CLIP, no embeddings
file) and closed-set ultralytics detectors alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.errors import DefectkitError, InputError, MissingWeightsError
from defectkit.fileio import (
    check_complete,
    read_json,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class YoloPredictConfig:
    """``weights``: ultralytics ``.pt``; ``split``: split.json; ``labels``: the ``defectkit convert`` folder."""

    weights: Path
    split: Path
    labels: Path
    output: Path
    splits: tuple[str, ...] = ("val", "test")
    conf: float = 0.001
    iou: float = 0.7
    imgsz: int | None = None
    max_det: int = 100
    batch: int = 8
    device: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be in [0, 1], got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"--iou must be in (0, 1], got {self.iou}")
        if self.imgsz is not None and self.imgsz < 32:
            raise ValueError(f"--imgsz must be >= 32, got {self.imgsz}")
        if self.max_det < 1 or self.batch < 1:
            raise ValueError("--max-det and --batch must be >= 1")
        if not self.splits or any(s not in SPLITS for s in self.splits):
            raise ValueError(f"--splits: choose from {SPLITS}, got {list(self.splits)}")
        if len(set(self.splits)) != len(self.splits):
            raise ValueError(f"--splits: duplicates in {list(self.splits)}")


def boxes_to_coco_results(
    image_id: int, xyxy: np.ndarray, classes: np.ndarray, scores: np.ndarray, *, decimals: int = 2
) -> list[dict[str, Any]]:
    """Detections of one image as COCO results, highest score first.

    xyxy: float [N, 4] pixels (x1, y1, x2, y2); classes: int [N] YOLO class (0-based);
    scores: float [N]. Output bbox is XYWH pixels, ``category_id`` = class + 1.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    out = []
    for i in order:
        x1, y1, x2, y2 = (float(v) for v in xyxy[i])
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(classes[i]) + 1,
                "bbox": [
                    round(x1, decimals),
                    round(y1, decimals),
                    round(x2 - x1, decimals),
                    round(y2 - y1, decimals),
                ],
                "score": round(float(scores[i]), 5),
            }
        )
    return out


def image_score(scores: Sequence[float] | np.ndarray) -> float:
    """Image-level defect score: the highest box score, 0.0 when there is no box."""
    arr = np.asarray(scores, dtype=np.float64)
    return float(arr.max()) if arr.size else 0.0


def image_scores_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text ``image,split,defect_type,label,score`` sorted by image name (box confidences: 6 decimals)."""
    from defectkit.predictions import CONFIDENCE_FORMAT, format_image_scores

    return format_image_scores(rows, score_format=CONFIDENCE_FORMAT)


def global_image_ids(manifest: Any, labels: Path, splits: Sequence[str]) -> dict[str, int]:
    """``{entry name: COCO image id}``: from LABELS/coco/<split>.json when present, checked against
    the manifest rule (1 + position in ``manifest.entries``), which is used when it is absent."""
    from defectkit.predictions import image_ids

    computed = image_ids(manifest.entries)
    for split in splits:
        path = Path(labels) / "coco" / f"{split}.json"
        if not path.is_file():
            continue
        check_complete(path)
        for img in read_json(path, "COCO file").get("images", []):
            name = img.get("name")
            if name not in computed or computed[name] != img.get("id"):
                raise InputError(
                    f"{path}: image {name!r} has id {img.get('id')}, the split gives {computed.get(name)}; "
                    "the labels were made from another split.json (re-run `defectkit convert`)"
                )
    return computed


def label_categories(labels: Path, splits: Sequence[str]) -> list[dict[str, Any]] | None:
    """The COCO categories of the converter's files (None when no COCO file exists)."""
    for split in (*splits, *SPLITS):
        path = Path(labels) / "coco" / f"{split}.json"
        if path.is_file():
            return list(read_json(path, "COCO file").get("categories", []))
    return None


def load_detector(weights: Path):
    """An ultralytics ``YOLO`` detector (YOLO-World or closed-set) from ``weights``, loaded offline;
    InputError naming the file when it is not a detector checkpoint. A ``.pt`` is trusted code (it is
    unpickled); one that holds no ultralytics model is refused from its pickle opcodes, unread."""
    from defectkit.finetune.yolo_world.env import import_ultralytics
    from defectkit.runtime import pickled_globals

    if Path(weights).suffix.lower() == ".pt" and not any(
        n.startswith("ultralytics.") for n in pickled_globals(weights)
    ):
        raise InputError(f"{weights}: not an ultralytics checkpoint (no ultralytics model inside)")
    import_ultralytics()
    from ultralytics import YOLO

    try:
        model = YOLO(str(weights), task="detect")
    except Exception as exc:  # ultralytics raises many types for non-checkpoints
        raise InputError(
            f"{weights}: cannot load as an ultralytics detector ({type(exc).__name__}: {exc})"
        ) from exc
    if getattr(model, "task", "detect") != "detect":
        raise InputError(f"{weights}: a {model.task} model, not a detector")
    return model


def _predictor(model: Any, config: YoloPredictConfig, imgsz: int):
    from ultralytics.models.yolo.detect import DetectionPredictor

    from defectkit.finetune.yolo_world.trainer import strip_integration_callbacks

    overrides = {
        "conf": config.conf,
        "iou": config.iou,
        "imgsz": imgsz,
        "max_det": config.max_det,
        "batch": config.batch,
        "save": False,
        "verbose": False,
        "mode": "predict",
        "project": str(Path(config.output).resolve()),
        "name": "ultralytics",
        "exist_ok": True,
    }
    if config.device is not None:
        overrides["device"] = config.device
    predictor = DetectionPredictor(overrides=overrides)
    strip_integration_callbacks(predictor)
    predictor.setup_model(model=model.model, verbose=False)
    return predictor


def _check_categories(model: Any, cats: list[dict[str, Any]] | None, labels: Path) -> None:
    nc = len(model.names)
    if cats is not None and len(cats) != nc:
        raise InputError(
            f"{labels}/coco: {len(cats)} categories but the model has {nc} classes {list(model.names.values())}"
        )


def predict_yolo(config: YoloPredictConfig) -> Path:
    """Run the detector on the chosen splits of the manifest and write PRED_DIR (module docstring)."""
    from defectkit.datasets.split import load_split
    from defectkit.devices import check_device
    from defectkit.progress import progress
    from defectkit.weights.registry import missing_hint, resolve_weights

    check_device(config.device)
    weights = Path(resolve_weights(config.weights, "--weights"))
    if not weights.is_file():
        raise MissingWeightsError(f"{weights}: weights file not found{missing_hint(weights)}")
    manifest = load_split(config.split)
    ids = global_image_ids(manifest, Path(config.labels), config.splits)
    cats = label_categories(Path(config.labels), config.splits)
    entries = [e for e in manifest.entries if e.split in config.splits]
    if not entries:
        raise InputError(f"{config.split}: no images in splits {list(config.splits)}")
    model = load_detector(weights)
    _check_categories(model, cats, Path(config.labels))
    train_args = getattr(model, "ckpt", {}).get("train_args", {}) if getattr(model, "ckpt", None) else {}
    imgsz = int(config.imgsz or train_args.get("imgsz") or 640)
    from defectkit.finetune.yolo_world.trainer import keep_torch_threads

    with keep_torch_threads():  # ultralytics' select_device would leave torch at cpu_count - 1 threads
        predictor = _predictor(model, config, imgsz)
    detections: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    paths = [str(manifest.image_path(e)) for e in entries]
    try:
        results = predictor(source=paths, stream=True)
        pairs = zip(entries, results, strict=False)  # count checked below
        for entry, res in progress(pairs, desc="yolo predict", total=len(entries)):
            boxes = res.boxes
            xyxy = boxes.xyxy.cpu().numpy()
            scores = boxes.conf.cpu().numpy()
            detections += boxes_to_coco_results(
                ids[entry.name], xyxy, boxes.cls.cpu().numpy().astype(int), scores
            )
            rows.append(
                {
                    "image": entry.name,
                    "split": entry.split,
                    "defect_type": entry.defect_type,
                    "label": entry.label,
                    "score": image_score(scores),
                }
            )
    except (FileNotFoundError, OSError) as exc:
        raise InputError(f"cannot read an image of {config.split}: {exc}") from exc
    except RuntimeError as exc:
        raise DefectkitError(f"prediction failed: {exc}") from exc
    if len(rows) != len(entries):
        raise DefectkitError(f"prediction returned {len(rows)} results for {len(entries)} images")
    return _write_outputs(config, model, detections, rows, imgsz)


def _write_outputs(config: YoloPredictConfig, model: Any, detections: list, rows: list, imgsz: int) -> Path:
    from defectkit.predictions import write_prediction_folder
    from defectkit.runtime import config_to_dict

    is_world = type(model.model).__name__ == "WorldModel"
    meta = {
        "model": "YOLO-World" if is_world else "YOLO",
        "kind": "detector",
        "weights": str(Path(config.weights).resolve()),
        "splits": list(config.splits),
        "config": {**config_to_dict(config), "imgsz": imgsz},
        "class_names": [model.names[i] for i in sorted(model.names)],
    }
    out = write_prediction_folder(config.output, meta, detections=detections, scores=image_scores_csv(rows))
    log.info("wrote %d detections for %d images to %s", len(detections), len(rows), out)
    return out
