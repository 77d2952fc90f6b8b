"""Training and prediction, one folder per model: ``yolo_world/`` (ultralytics), ``sam/``
(segment-anything) and ``image/`` (a torchvision classifier and an AutoEncoder). Each folder uses
the same file names for the same roles (``config``, ``data``, ``model``, ``engine``, ``train``,
``predict``, ``cli``; YOLO-World has no ``data`` or ``model``: ultralytics owns both, and its
engine is ``trainer``, the ultralytics trainer subclasses) and exports what users import from its
``__init__``. Every trainer writes into one run folder: resolved config, per-epoch metrics CSV,
checkpoints.

Old module names (the flat ``defectkit.finetune.sam_model`` ... of defectkit <= 0.x, and
``image.classifier`` / ``image.autoencoder`` / ``image.*_model`` of the first per-model layout)
still import, for one release, with a DeprecationWarning:

- :data:`MOVED_MODULES` maps a module that moved whole (or was merged into another) to its new
  home; :class:`_MovedModuleFinder` (on ``sys.meta_path``) makes the old name an alias of the new
  module (the same module object) when, and only when, the old name is imported;
- :data:`SPLIT_MODULES` maps a module whose contents went to several modules (``classifier`` and
  ``autoencoder``: training to ``image/train.py``, prediction to ``image/predict.py``, the network,
  loading and scoring to ``image/model.py``) to those modules: the old name imports as a small
  module that serves each old name from the first of them that has it (the same objects).

The old ``defectkit.finetune.yolo_world`` module is now the package of that name, which still
serves every name of ``yolo_world/train.py`` (its ``__getattr__`` falls back to it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any, NamedTuple

#: old module (relative to ``defectkit.finetune``) -> its new full name
MOVED_MODULES: dict[str, str] = {
    "common": "defectkit.runtime",
    "yolo_world_trainer": "defectkit.finetune.yolo_world.trainer",
    "yolo_world_env": "defectkit.finetune.yolo_world.env",
    "yolo_world_predict": "defectkit.finetune.yolo_world.predict",
    "yolo_world_cli": "defectkit.finetune.yolo_world.cli",
    "yolo_augment": "defectkit.finetune.yolo_world.augment",
    "text_embeddings": "defectkit.finetune.yolo_world.text_embeddings",
    "sam_model": "defectkit.finetune.sam.model",
    "sam_fast_decoder": "defectkit.finetune.sam.fast_decoder",
    "sam_data": "defectkit.finetune.sam.data",
    "sam_cache": "defectkit.finetune.sam.cache",
    "sam_engine": "defectkit.finetune.sam.engine",
    "sam_train": "defectkit.finetune.sam.train",
    "sam_predict": "defectkit.finetune.sam.predict",
    "sam_cli": "defectkit.finetune.sam.cli",
    "image_config": "defectkit.finetune.image.config",
    "image_data": "defectkit.finetune.image.data",
    "image_augment": "defectkit.finetune.image.augment",
    "image_losses": "defectkit.finetune.image.losses",
    "image_engine": "defectkit.finetune.image.engine",
    "image_dist": "defectkit.finetune.image.dist",
    "image_common": "defectkit.finetune.image.runs",
    "image_metrics": "defectkit.finetune.image.metrics",
    "image_predict": "defectkit.finetune.image.predict",
    "image_cli": "defectkit.finetune.image.cli",
    "image_folder_predict": "defectkit.finetune.image.folder_predict",
    "classifier_model": "defectkit.finetune.image.model",
    "autoencoder_model": "defectkit.finetune.image.model",
    "image.classifier_model": "defectkit.finetune.image.model",
    "image.autoencoder_model": "defectkit.finetune.image.model",
}


class SplitModule(NamedTuple):
    """Where an old module's names went: ``modules`` (full names, searched in order) and the old
    names that were renamed there (old -> new)."""

    modules: tuple[str, ...]
    renamed: dict[str, str]


_IMAGE_ROLES = ("defectkit.finetune.image.train", "defectkit.finetune.image.predict", "defectkit.finetune.image.model")
_CLASSIFIER = SplitModule(_IMAGE_ROLES, {"KIND": "CLASSIFIER_KIND"})
_AUTOENCODER = SplitModule(_IMAGE_ROLES, {"KIND": "AUTOENCODER_KIND"})

#: old module (relative to ``defectkit.finetune``) whose names went to several modules
SPLIT_MODULES: dict[str, SplitModule] = {
    "classifier": _CLASSIFIER,
    "image.classifier": _CLASSIFIER,
    "autoencoder": _AUTOENCODER,
    "image.autoencoder": _AUTOENCODER,
}

_MISSING = object()


def _split_module(name: str, split: SplitModule) -> ModuleType:
    """A module ``name`` whose attributes are looked up, on first use, in ``split.modules``."""
    module = ModuleType(name, f"Deprecated: the names of this module are now in {', '.join(split.modules)}.")

    def __getattr__(attr: str) -> Any:
        if not attr.startswith("__"):
            new = split.renamed.get(attr, attr)
            for target in split.modules:
                found = getattr(importlib.import_module(target), new, _MISSING)
                if found is not _MISSING:
                    return found
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]  # PEP 562
    return module



class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``defectkit.finetune.<old>`` as the module it moved to (same object, so
    ``from defectkit.finetune.sam_model import build_sam_model`` gives the very function of
    ``defectkit.finetune.sam.model``). The new module is imported only when the old name is."""

    prefix = __name__ + "."

    def __init__(self) -> None:
        self._real_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        old = fullname[len(self.prefix):] if fullname.startswith(self.prefix) else None
        if old not in MOVED_MODULES and old not in SPLIT_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        old = spec.name[len(self.prefix):]
        if old in SPLIT_MODULES:
            split = SPLIT_MODULES[old]
            warnings.warn(f"{spec.name} was split into {', '.join(split.modules)}; the old name goes away in "
                          "the next release", DeprecationWarning, stacklevel=2)
            return _split_module(spec.name, split)
        new = MOVED_MODULES[old]
        warnings.warn(f"{spec.name} moved to {new}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._real_specs[spec.name] = module.__spec__  # the import system overwrites __spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._real_specs.pop(module.__spec__.name, module.__spec__)


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())
