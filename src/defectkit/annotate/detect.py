"""Detector boxes for ``annotate auto``: an ultralytics (YOLO-World) checkpoint run on one image.

A YOLO-World ``best.pt`` written by ``defectkit finetune yolo-world`` carries its class text
features (``txt_feats``) and names, so it predicts without CLIP; ``--text-embeddings`` (a file from
``defectkit embed-text``) re-applies the features of the checkpoint's class names from that file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.annotate.prompts import BoxPrompt
from defectkit.errors import InputError, MissingWeightsError

log = logging.getLogger(__name__)


@dataclass
class Detector:
    """``detect(image HWC uint8 RGB) -> [BoxPrompt]`` (category id = YOLO class + 1, XYXY pixels)."""

    model: Any
    names: tuple[str, ...]
    conf: float
    max_det: int
    device: str | None

    def detect(self, image: np.ndarray) -> list[BoxPrompt]:
        kwargs = {"conf": self.conf, "max_det": self.max_det, "verbose": False, "save": False}
        if self.device is not None:
            kwargs["device"] = self.device
        # ultralytics takes numpy input as BGR, like cv2.imread
        res = self.model.predict(source=np.ascontiguousarray(image[:, :, ::-1]), **kwargs)[0]
        xyxy = res.boxes.xyxy.cpu().numpy().reshape(-1, 4)
        cls = res.boxes.cls.cpu().numpy().astype(int)
        conf = res.boxes.conf.cpu().numpy()
        order = np.argsort(-conf, kind="stable")
        return [BoxPrompt(int(cls[i]) + 1, tuple(float(v) for v in xyxy[i]), float(conf[i])) for i in order]


def load_detector(
    weights: str | os.PathLike,
    text_embeddings: str | os.PathLike | None,
    conf: float,
    max_det: int = 100,
    device: str | None = None,
) -> Detector:
    """Load an ultralytics detector checkpoint offline; InputError/MissingWeightsError naming the file."""
    from defectkit.finetune.yolo_world.predict import load_detector
    from defectkit.weights.registry import missing_hint, resolve_weights

    path = Path(resolve_weights(weights, "--detector"))
    if not path.is_file():
        raise MissingWeightsError(f"{path}: --detector weights file not found{missing_hint(path)}")
    model = load_detector(path)
    names = tuple(str(model.names[i]) for i in sorted(model.names))
    if text_embeddings is not None:
        _apply_text_embeddings(model, names, text_embeddings)
    log.info("detector %s: classes %s", path, list(names))
    return Detector(model, names, conf, max_det, device)


def _apply_text_embeddings(model: Any, names: tuple[str, ...], path: str | os.PathLike) -> None:
    from defectkit.finetune.yolo_world.text_embeddings import load_text_embeddings

    inner = model.model
    if not hasattr(inner, "txt_feats"):
        raise InputError(
            f"--text-embeddings {path}: the detector is not a YOLO-World model (no text features)"
        )
    feats = load_text_embeddings(path).features_for(names, source=str(path))
    old = inner.txt_feats
    if tuple(old.shape[-2:]) != tuple(feats.shape):
        raise InputError(
            f"{path}: embeddings are {list(feats.shape)}, the detector expects {list(old.shape[-2:])}"
        )
    inner.txt_feats = feats.unsqueeze(0).to(old.device, old.dtype)
