"""``defectkit predict classifier|autoencoder --images DIR``: scores for a folder of unlabelled images.

Reads every image file directly in DIR (sorted by name; extensions as in
:data:`defectkit.datasets.io.IMAGE_EXTENSIONS`; sub-folders are not entered) and writes into the
output folder:

- ``image_scores.csv``: ``image,file,score,pred`` (``image``: the file's stem, the name of its map
  and overlay; ``file``: its name in DIR; ``pred``: 1 when score >= the threshold saved in the checkpoint,
  empty when the checkpoint holds no usable threshold), sorted by ``image``;
- ``prediction_meta.json``: weights, threshold, source folder, counts, skipped files, model spec;
- AutoEncoder only: ``anomaly_maps/<image>.npy`` (float32 HxW at the image's own size, the same
  maps as the split predictions) and ``overlays/<image>.png`` (the map as a heatmap over the
  image, HWC uint8 RGB at the image's own size; colour scale: blue 0 up to red at the threshold).

Images are preprocessed exactly like the split predictions (resized to the model's square input
with INTER_AREA, scaled to [0, 1], ImageNet mean/std for the classifier), so an image scores the
same here as in ``--split`` predictions. An unreadable file is skipped with a counted warning naming
it; no readable image at all is an InputError.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.errors import InputError

log = logging.getLogger(__name__)

FOLDER_SCORE_COLUMNS = ("image", "file", "score", "pred")
MODELS = ("classifier", "autoencoder")


@dataclass(frozen=True)
class FolderPredictConfig:
    """What ``predict --images`` does. model: "classifier" | "autoencoder"; weights: RUN/best.pt;
    images: the folder of images; output: the prediction folder; save_maps / overlays: write the
    AutoEncoder's anomaly_maps/*.npy / overlays/*.png."""

    model: str
    weights: str
    images: str
    output: str
    batch_size: int = 16
    device: str | None = None
    save_maps: bool = True
    overlays: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in ("weights", "images", "output"):
            if not getattr(self, name):
                raise ValueError(f"{name}: required")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; InputError when the folder is missing,
    holds no image file, or holds two images with one stem (their outputs would share a name)."""
    from defectkit.datasets.io import IMAGE_EXTENSIONS, is_image_file

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--images {root}: folder not found" if not root.exists() else f"--images {root}: not a folder")
    files = sorted((p for p in root.iterdir() if is_image_file(p)), key=lambda p: p.name)
    if not files:
        raise InputError(f"--images {root}: no image file ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise InputError(f"{p}: same name stem as {seen[p.stem].name} in {root} (outputs are named by stem: "
                             "rename or remove one)")
        seen[p.stem] = p
    return files


def format_folder_scores(rows: Sequence[tuple[str, str, float]], threshold: float | None) -> str:
    """CSV text of ``(image, file, score)`` rows sorted by image; pred = 1 when score >= threshold
    (empty for every row when ``threshold`` is None)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FOLDER_SCORE_COLUMNS)
    for image, file, score in sorted(rows):
        if not math.isfinite(score):
            raise ValueError(f"{file}: score is {score}")
        w.writerow([image, file, f"{float(score):.8g}", "" if threshold is None else int(score >= threshold)])
    return buf.getvalue()


def heatmap_overlay(image: np.ndarray, amap: np.ndarray, vmax: float | None, *, alpha: float = 0.5,
                    caption: str | None = None) -> np.ndarray:
    """``image`` (HWC uint8 RGB) blended with ``amap`` (HxW float, same H and W) as a JET heatmap.

    The colour scale runs from blue at 0 to red at ``vmax`` (values above are red, below 0 blue);
    ``vmax`` None or <= 0: the map's own min..max. ``caption`` is written in the top-left corner
    (on images of at least 128 px a side).
    Returns HWC uint8 RGB of the image's size.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HWC uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if amap.shape != image.shape[:2]:
        raise ValueError(f"map shape {amap.shape} differs from image shape {image.shape[:2]}")
    a = amap.astype(np.float64)
    if vmax is not None and vmax > 0:
        v = np.clip(a / vmax, 0.0, 1.0)
    else:
        lo, hi = float(a.min()), float(a.max())
        v = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    heat = cv2.cvtColor(cv2.applyColorMap(np.round(v * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = np.round(image.astype(np.float64) * (1 - alpha) + heat.astype(np.float64) * alpha).astype(np.uint8)
    if caption and min(image.shape[:2]) >= 128:  # on a smaller image the text would hide the map
        scale = max(0.3, min(image.shape[:2]) / 500.0)
        thick = max(1, round(scale * 2))
        org = (4, 4 + int(22 * scale))
        cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, caption, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def to_input(image: np.ndarray, image_size: int, normalize: bool):
    """HWC uint8 RGB -> 3xSxS float32 tensor exactly as :class:`ManifestDataset` makes it."""
    import cv2
    import torch

    from defectkit.datasets.torch_data import IMAGENET_MEAN, IMAGENET_STD

    small = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1).float().div_(255.0)
    if normalize:
        x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x


def _threshold(ckpt: dict[str, Any], weights: str) -> float | None:
    value = ckpt.get("threshold")
    if value is None or not math.isfinite(float(value)):
        log.warning("%s: the checkpoint holds no usable val threshold (%s): the pred column is left empty",
                    weights, value)
        return None
    return float(value)


@dataclass
class _Model:
    """A loaded model with what scoring needs. score(batch) -> (N scores, NxHxW maps or None)."""

    net: Any
    ckpt: dict[str, Any]
    name: str
    kind: str
    normalize: bool
    score_text: str
    stats: Any = None


def _load(config: FolderPredictConfig) -> _Model:
    if config.model == "classifier":
        from defectkit.finetune.image.model import CLASSIFIER_KIND, load_classifier
        from defectkit.finetune.image.predict import display_name

        net, ckpt = load_classifier(config.weights)
        return _Model(net, ckpt, display_name(ckpt["model_spec"], ckpt["config"]), CLASSIFIER_KIND,
                      ckpt["model_spec"]["normalize"], "1 - p(good)")
    from defectkit.finetune.image.model import AUTOENCODER_KIND, load_autoencoder

    net, ckpt = load_autoencoder(config.weights)
    spec = ckpt["model_spec"]
    stats = ckpt.get("map_stats")
    text = f"{spec['reduction']} of the smoothed reconstruction-error map" + (
        ", each pixel standardised by good images' errors there" if stats is not None else "")
    name = "AutoEncoder" + ("" if spec["loss"] == "l2" else f" ({spec['loss']})")
    return _Model(net, ckpt, name, AUTOENCODER_KIND, False, text, stats)


def _score_batch(model: _Model, x):
    """(N image scores as floats, NxHxW maps at the model's resolution or None)."""
    import torch

    with torch.no_grad():
        out = model.net(x)
        if model.kind == "classifier":
            from defectkit.finetune.image.model import defect_score

            return defect_score(out).float().cpu().tolist(), None
        from defectkit.finetune.image.model import anomaly_maps, reduce_maps

        spec = model.ckpt["model_spec"]
        maps = anomaly_maps(out, x, loss=spec["loss"], sigma=spec["smooth_sigma"], stats=model.stats)
        return reduce_maps(maps, spec["reduction"]).float().cpu().tolist(), maps


def _write_maps(config: FolderPredictConfig, threshold: float | None, items: list[tuple[Path, np.ndarray]],
                maps, scores: list[float]) -> None:
    """anomaly_maps/<stem>.npy and overlays/<stem>.png of one batch, each at its image's own size."""
    import torch.nn.functional as F

    from defectkit.fileio import ensure_dir
    from defectkit.predictions import write_anomaly_map

    for (path, image), m, s in zip(items, maps, scores, strict=True):
        h, w = image.shape[:2]
        full = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
        if config.save_maps:
            write_anomaly_map(config.output, path.stem, full)
        if config.overlays:
            decision = "" if threshold is None else (" defect" if s >= threshold else " good")
            over = heatmap_overlay(image, full, threshold, caption=f"{s:.3g}{decision}")
            _png(ensure_dir(Path(config.output) / "overlays") / f"{path.stem}.png", over)


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    from defectkit.fileio import atomic_open

    with atomic_open(path, "wb") as fh:
        Image.fromarray(rgb).save(fh, format="PNG")


def predict_images(config: FolderPredictConfig) -> Path:
    """Score every readable image of ``config.images`` and write the prediction folder (see the
    module docstring); returns the folder. The folder is marked incomplete until the CSV is written."""
    import torch

    from defectkit.datasets.io import read_image
    from defectkit.fileio import (
        atomic_write_json,
        atomic_write_text,
        check_output_dir,
        ensure_dir,
        mark_complete,
        mark_incomplete,
    )
    from defectkit.progress import progress
    from defectkit.runtime import resolve_device

    check_output_dir(config.output)  # a bad -o is reported before the work, not after it
    files = list_images(config.images)
    model = _load(config)
    device = resolve_device(config.device)
    model.net.to(device)
    threshold = _threshold(model.ckpt, config.weights)
    size = int(model.ckpt["model_spec"]["image_size"])
    out = ensure_dir(config.output)
    mark_incomplete(out, f"defectkit predict {config.model} --images")
    rows: list[tuple[str, str, float]] = []
    skipped: list[str] = []
    for start in progress(range(0, len(files), config.batch_size), desc="predict images"):
        items = []
        for path in files[start:start + config.batch_size]:
            try:
                items.append((path, read_image(path)))
            except InputError as exc:
                log.warning("%s (skipped)", exc)
                skipped.append(path.name)
        if not items:
            continue
        x = torch.stack([to_input(img, size, model.normalize) for _, img in items]).to(device)
        scores, maps = _score_batch(model, x)
        if maps is not None and (config.save_maps or config.overlays):
            _write_maps(config, threshold, items, maps, scores)
        rows += [(p.stem, p.name, s) for (p, _), s in zip(items, scores, strict=True)]
    if not rows:
        raise InputError(f"--images {config.images}: none of the {len(files)} image file(s) could be read")
    if skipped:
        log.warning("%d of %d image file(s) in %s could not be read and were skipped: %s", len(skipped),
                    len(files), config.images, ", ".join(skipped))
    _remove_stale(config, out, {image for image, _, _ in rows})
    atomic_write_text(out / "image_scores.csv", format_folder_scores(rows, threshold))
    atomic_write_json(out / "prediction_meta.json", _meta(config, model, threshold, len(rows), skipped))
    mark_complete(out)
    return out


def _remove_stale(config: FolderPredictConfig, out: Path, stems: set[str]) -> None:
    """Delete ``anomaly_maps/*.npy`` and ``overlays/*.png`` an earlier run into ``out`` left for images
    not scored now (or all of them when this run writes none), so the folder matches its CSV."""
    kinds = (("anomaly_maps", ".npy", config.save_maps), ("overlays", ".png", config.overlays))
    stale = [f for sub, suffix, kept in kinds for f in sorted((out / sub).glob(f"*{suffix}"))
             if not kept or f.stem not in stems]
    for f in stale:
        f.unlink()
    if stale:
        log.info("%s: removed %d map/overlay file(s) of an earlier run", out, len(stale))


def _meta(config: FolderPredictConfig, model: _Model, threshold: float | None, count: int,
          skipped: list[str]) -> dict[str, Any]:
    ckpt = model.ckpt
    return {
        "model": model.name,
        "kind": model.kind,
        "weights": str(Path(config.weights).resolve()),
        "images": str(Path(config.images).resolve()),
        "count": count,
        "skipped": skipped,
        "threshold": threshold,
        "threshold_method": ckpt.get("threshold_method"),
        "score": model.score_text,
        "config": {
            **dataclasses.asdict(config),
            "epoch": ckpt.get("epoch"),
            "model_spec": ckpt["model_spec"],
            "train_config": ckpt["config"],
        },
    }
