"""The chain of stages shared by ``defectkit demo`` and ``defectkit run``.

A :class:`PipelineConfig` holds one section per stage; each model section is passed as keyword
arguments to that model's own config dataclass (so a YAML key is exactly a library field name,
e.g. ``classifier: {arch: resnet18, epochs: 10}`` -> ``ClassifierConfig(arch=..., epochs=...)``).
Paths that stages hand to each other (split.json, labels/, run folders) are derived from
``output`` and never need to be written in the YAML.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkit.errors import InputError
from defectkit.runtime import make_config

log = logging.getLogger(__name__)

MODEL_SECTIONS = ("yolo_world", "sam", "classifier", "autoencoder")


@dataclass(frozen=True)
class PipelineConfig:
    """The whole chain. ``dataset``: category folder (ignored when ``synth`` generates one under
    ``output/data``). A model section set to None is skipped. ``text_embeddings``: either
    ``{"clip_weights": PATH}`` (real CLIP ViT-B/32 text features) or ``{"random_seed": S}``
    (seeded random vectors: a stand-in that makes YOLO-World a closed-set detector). ``device``: the
    device of every model section (and CLIP) that sets none itself, in the form its library takes
    (``cuda:1`` becomes ``1`` for ultralytics, ``0`` becomes ``cuda:0`` for torch).
    ``categories``: ``"all"`` or a list of names: ``dataset`` is then an MVTec root and each category
    runs the whole chain into ``output/<category>/`` (:mod:`defectkit.pipeline.multi`)."""

    output: str
    dataset: str | None = None
    synth: dict[str, Any] | None = None
    split: dict[str, Any] = field(default_factory=lambda: {"defects_to_train": 5, "val_fraction": 0.2})
    paste: dict[str, Any] | None = None
    convert: dict[str, Any] = field(default_factory=dict)
    text_embeddings: dict[str, Any] = field(default_factory=lambda: {"random_seed": 0})
    yolo_world: dict[str, Any] | None = None
    sam: dict[str, Any] | None = None
    sam_on_detections: bool = True
    classifier: dict[str, Any] | None = None
    autoencoder: dict[str, Any] | None = None
    eval: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    categories: str | list[str] | None = None

    def __post_init__(self) -> None:
        if self.dataset is None and self.synth is None:
            raise ValueError("dataset: give the category folder (or a synth section)")
        if self.categories is not None:
            from defectkit.pipeline.multi import check_categories_field

            check_categories_field(self)
        if self.device is not None:
            self._inherit_device(str(self.device))

    def _inherit_device(self, device: str) -> None:
        from defectkit.devices import for_torch, for_ultralytics, gpu_indices

        gpu_indices(device)  # a malformed device string fails here, naming it
        sections = {m: getattr(self, m) for m in MODEL_SECTIONS}
        if self.text_embeddings.get("clip_weights"):
            sections["text_embeddings"] = self.text_embeddings
        for name, section in sections.items():
            if section is not None and "device" not in section:
                form = for_ultralytics(device) if name == "yolo_world" else for_torch(device)
                object.__setattr__(self, name, {**section, "device": form})

    @property
    def out(self) -> Path:
        return Path(self.output).resolve()

    @property
    def data_dir(self) -> Path:
        if self.synth is not None:
            return self.out / "data" / self.synth.get("category", "bottle")
        return Path(self.dataset).resolve()  # type: ignore[arg-type]

    @property
    def made_split_path(self) -> Path:
        """What the split stage writes."""
        return self.out / "split.json"

    @property
    def paste_dir(self) -> Path:
        return self.out / "paste"

    @property
    def split_path(self) -> Path:
        """The split every stage after ``split`` reads: the pasted one when a ``paste`` section
        is set (val and test unchanged; pasted defect images added to train)."""
        return self.paste_dir / "split.json" if self.paste is not None else self.made_split_path

    @property
    def labelled_dir(self) -> Path:
        """The dataset folder the split at :attr:`split_path` lists (the derived one when pasting)."""
        return self.paste_dir / self.data_dir.name if self.paste is not None else self.data_dir

    @property
    def labels(self) -> Path:
        return self.out / "labels"

    @property
    def text_path(self) -> Path:
        return self.out / "labels" / "text_embeddings.pt"

    def run_dir(self, model: str) -> Path:
        return self.out / "runs" / model

    @property
    def report_dir(self) -> Path:
        return self.out / "report"


def build(cls: type, section: dict[str, Any], where: str, **fixed: Any) -> Any:
    """``cls(**section, **fixed)`` with bad keys or values reported as InputError naming ``where``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - names)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__} (allowed: {sorted(names - set(fixed))})"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in section and k not in fixed]
    if missing:
        raise InputError(f"{where}: missing key(s) {missing}")
    clash = sorted(set(section) & set(fixed))
    if clash:
        raise InputError(f"{where}: {clash} are set by the pipeline itself; remove them")
    try:
        return make_config(cls, where, **section, **fixed)
    except TypeError as exc:  # a YAML value of the wrong type (e.g. a string where a number belongs)
        raise InputError(f"{where}: {exc}") from exc
