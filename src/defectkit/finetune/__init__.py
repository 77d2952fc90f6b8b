"""Training and prediction, one folder per model: ``yolo_world/`` (ultralytics), ``sam/``
(segment-anything) and ``image/`` (a torchvision classifier and an AutoEncoder). Each folder uses
the same file names for the same roles (``config``, ``data``, ``model``, ``engine``/``train``,
``predict``, ``cli``) and exports what users import from its ``__init__``. Every trainer writes
into one run folder: resolved config, per-epoch metrics CSV, checkpoints.

The flat module names of defectkit <= 0.x (``defectkit.finetune.sam_model`` ...) still import, for
one release, with a DeprecationWarning: :data:`MOVED_MODULES` maps each to its new home, and
:class:`_MovedModuleFinder` (on ``sys.meta_path``) makes the old name an alias of the new module
(the same module object) when, and only when, the old name is imported. The old
``defectkit.finetune.yolo_world`` module is now the package of that name, which still serves every
name of ``yolo_world/train.py`` (its ``__getattr__`` falls back to it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

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
    "classifier": "defectkit.finetune.image.classifier",
    "classifier_model": "defectkit.finetune.image.classifier_model",
    "autoencoder": "defectkit.finetune.image.autoencoder",
    "autoencoder_model": "defectkit.finetune.image.autoencoder_model",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``defectkit.finetune.<old>`` as the module it moved to (same object, so
    ``from defectkit.finetune.sam_model import build_sam_model`` gives the very function of
    ``defectkit.finetune.sam.model``). The new module is imported only when the old name is."""

    prefix = __name__ + "."

    def __init__(self) -> None:
        self._real_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix) or fullname[len(self.prefix):] not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED_MODULES[spec.name[len(self.prefix):]]
        warnings.warn(f"{spec.name} moved to {new}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._real_specs[spec.name] = module.__spec__  # the import system overwrites __spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._real_specs.pop(module.__spec__.name, module.__spec__)


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())
