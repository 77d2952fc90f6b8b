"""``defectkit annotate overlay``: one overlay PNG per COCO image plus the per-image agreement table.

Output folder: ``<name>.png`` per image (the image's size), ``agreement.csv`` (rows in review
order) and ``overlay_config.json`` (the resolved config).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from defectkit.annotate.agreement import ImageAgreement, image_agreement, review_order
from defectkit.annotate.overlay import draw_overlay
from defectkit.annotate.sources import load_ground_truth, load_predictions, resolve_image
from defectkit.errors import InputError
from defectkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_dir
from defectkit.progress import progress

log = logging.getLogger(__name__)

AGREEMENT_HEADER = ("image", "defect_type", "n_gt", "n_pred", "iou", "max_score", "status", "overlay")


@dataclass(frozen=True)
class OverlayConfig:
    """Inputs of the overlay renderer (paths as given by the user).

    coco: COCO ground-truth json. pred: detections.json (COCO results) or a prediction folder; None
    draws the ground truth only. images_root: folder the COCO ``file_name`` values are relative to
    (default: the file's ``info.dataset``). score_threshold: predictions below it are not drawn
    nor counted. iou_threshold: image IoU from which GT and predictions "match".
    """

    coco: str
    output: str
    pred: str | None = None
    images_root: str | None = None
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    alpha: float = 0.45

    def __post_init__(self) -> None:
        for name in ("score_threshold", "iou_threshold", "alpha"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class OverlayResult:
    """One rendered image: its agreement row, overlay PNG path and (optionally) a JPEG thumbnail."""

    agreement: ImageAgreement
    overlay: Path
    thumbnail_jpeg: bytes | None = None


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an HWC uint8 RGB array."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an HWC uint8 RGB array (thumbnails: ~10x smaller than PNG on photos)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def thumbnail(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an HWC image so its longest side is at most ``max_side`` (area interpolation)."""
    import cv2

    h, w = rgb.shape[:2]
    f = max_side / max(h, w)
    if f >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def render_overlays(cfg: OverlayConfig, *, thumb_side: int | None = None) -> list[OverlayResult]:
    """Draw every image of ``cfg.coco``; write PNGs, agreement.csv and the config; return rows in
    review order (see :func:`~defectkit.annotate.agreement.review_order`)."""
    from defectkit.datasets.io import read_image

    gt = load_ground_truth(cfg.coco)
    preds = load_predictions(cfg.pred, gt, cfg.score_threshold) if cfg.pred else {}
    out = ensure_dir(cfg.output)
    results: dict[int, OverlayResult] = {}
    for info in progress(list(gt.images.values()), desc="overlays"):
        src = resolve_image(gt, info, cfg.images_root)
        image = read_image(src)
        if image.shape[:2] != (info.height, info.width):
            raise InputError(
                f"{src}: image is "
                f"{image.shape[1]}x{image.shape[0]}, {cfg.coco} says {info.width}x{info.height}"
            )
        g, p = gt.shapes(info.id), preds.get(info.id, [])
        row = image_agreement(
            info.id, info.name, info.defect_type, info.height, info.width, g, p, cfg.iou_threshold
        )
        caption = f"{row.status.replace('_', ' ')}" + ("" if row.iou is None else f"  IoU {row.iou:.2f}")
        drawn = draw_overlay(image, g, p, gt.categories, alpha=cfg.alpha, caption=caption)
        path = atomic_write_bytes(out / f"{info.name}.png", encode_png(drawn))
        thumb = encode_jpeg(thumbnail(drawn, thumb_side)) if thumb_side else None
        results[info.id] = OverlayResult(row, path, thumb)
    ordered = [results[r.image_id] for r in review_order(r.agreement for r in results.values())]
    atomic_write_text(out / "agreement.csv", agreement_csv(ordered))
    atomic_write_json(
        out / "overlay_config.json",
        {
            **asdict(cfg),
            "coco": os.path.abspath(cfg.coco),
            "categories": {str(k): v for k, v in gt.categories.items()},
        },
    )
    log.info("wrote %d overlays to %s", len(ordered), out)
    return ordered


def agreement_csv(rows: list[OverlayResult]) -> str:
    """CSV text of the agreement table (IoU empty when undefined, 4 decimals)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(AGREEMENT_HEADER)
    for r in rows:
        a = r.agreement
        writer.writerow(
            [
                a.name,
                a.defect_type,
                a.n_gt,
                a.n_pred,
                "" if a.iou is None else f"{a.iou:.4f}",
                f"{a.max_score:.4f}",
                a.status,
                r.overlay.name,
            ]
        )
    return buf.getvalue()
