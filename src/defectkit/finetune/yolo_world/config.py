"""``defectkit finetune yolo-world`` settings: :class:`YoloFinetuneConfig` and the ``--set`` parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkit.predictions import is_yolo_world_checkpoint, is_yolo_world_name

#: ultralytics arguments defectkit sets itself (``--set`` may not override them)
RESERVED_ARGS = frozenset(
    {"model", "data", "project", "name", "exist_ok", "resume", "save_dir", "mode", "task"}
)


def parse_set_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lr0=0.01", "mosaic=0", "plots=False"]`` -> ``{"lr0": 0.01, "mosaic": 0, "plots": False}``.

    Values are parsed as YAML scalars (numbers, booleans, null, lists); ValueError on bad items.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key in RESERVED_ARGS:
            raise ValueError(f"--set {key}: set by defectkit itself (use the matching flag)")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: cannot parse value ({exc})") from exc
    return out


#: by name only (``yolov8s-worldv2.yaml``); the config decides with :func:`is_yolo_world_checkpoint`
is_world_model = is_yolo_world_name


@dataclass(frozen=True)
class YoloFinetuneConfig:
    """``defectkit finetune yolo-world``. ``model``: a ``.pt`` file path or a ``.yaml`` config
    (an ultralytics built-in name such as ``yolov8n-worldv2.yaml`` or a path) to train from scratch.
    ``device``: None (auto), "cpu", "0", or "0,1,..." (ultralytics DDP over those GPUs).
    ``transpose``: probability of swapping x and y of a training image and its labels
    (:class:`~defectkit.finetune.yolo_world.augment.RandomTranspose`); with ultralytics' ``fliplr`` and
    ``flipud`` at 0.5 (``overrides``) every 90-degree rotation and mirror is seen.
    Training length: ``steps`` optimiser steps rounded up to whole epochs, or ``epochs`` when > 0
    (it wins); see ``resolve_epochs``."""

    data: Path
    model: str
    output: Path
    text_embeddings: Path | None = None
    steps: int = 1000
    epochs: int = 0
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    workers: int = 2
    seed: int = 0
    transpose: float = 0.0
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.transpose <= 1.0:
            raise ValueError(f"--transpose must be a probability in [0, 1], got {self.transpose}")
        for name in ("imgsz", "batch"):
            if getattr(self, name) < 1 and not (name == "batch" and getattr(self, name) == -1):
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.epochs < 0 or (self.steps == 0 and self.epochs == 0):
            raise ValueError(
                f"--steps/--epochs: give a training length > 0 (got steps {self.steps}, epochs {self.epochs})"
            )
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        from defectkit.weights.registry import lookup

        suffix = ".pt" if lookup(self.model) is not None else Path(self.model).suffix.lower()
        if suffix not in {".pt", ".yaml", ".yml"}:
            raise ValueError(f"--model {self.model}: expected a .pt weights file or a .yaml model config "
                             "(or a name from `defectkit weights list`)")
        if suffix != ".pt":  # a .pt checkpoint is inspected when training starts
            _check_text_matches(self.model, is_yolo_world_checkpoint(self.model), self.text_embeddings is not None)
        bad = sorted(set(self.overrides) & RESERVED_ARGS)
        if bad:
            raise ValueError(f"--set {bad[0]}: set by defectkit itself")


def _check_text_matches(model: str, world: bool, has_text: bool) -> None:
    if world and not has_text:
        raise ValueError(f"--model {model} is YOLO-World: give --text-embeddings FILE")
    if not world and has_text:
        raise ValueError(f"--text-embeddings: {model} is a closed-set detector and uses no text")
