"""A PyTorch ``Dataset`` over one split of a manifest (used by the classifier and AutoEncoder).

Imports torch at module level: import this module only where torch is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from defectkit.datasets.io import read_image, read_mask
from defectkit.datasets.split import SplitEntry, SplitManifest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ManifestDataset(Dataset):
    """Images (and optionally masks) of one manifest split.

    Each item is a dict:
      ``image``: float32 tensor 3xHxW; with the default transform, resized to ``image_size`` and
      scaled to [0, 1] (``normalize=True`` applies ImageNet mean/std);
      ``label``: int64 tensor, 0 good / 1 defect; ``target``: the task class index
      (== label for the binary task, 0 good / 1+defect-type index for ``classes``);
      ``mask``: float32 1xHxW in {0, 1} when ``with_mask``; ``index``: position in the split.

    ``transform``: optional callable ``(image HWC uint8, mask HxW uint8) -> (image, mask)``
    applied before resizing (albumentations-style augmentation goes here).
    ``cache``: keep decoded, resized images in memory (small datasets, many epochs).
    """

    def __init__(
        self,
        manifest: SplitManifest,
        split: str,
        *,
        image_size: int | None = 224,
        normalize: bool = False,
        with_mask: bool = False,
        classes: tuple[str, ...] | None = None,
        transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
        cache: bool = True,
    ) -> None:
        self.manifest = manifest
        self.entries: tuple[SplitEntry, ...] = manifest.subset(split)
        self.image_size = image_size
        self.normalize = normalize
        self.with_mask = with_mask
        self.classes = classes
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.entries)

    def labels(self) -> list[int]:
        return [e.label for e in self.entries]

    def targets(self) -> list[int]:
        return [self._target(e) for e in self.entries]

    def _target(self, e: SplitEntry) -> int:
        if self.classes is None:
            return e.label
        return 0 if e.label == 0 else 1 + self.classes.index(e.defect_type)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        import cv2

        e = self.entries[i]
        img = read_image(self.manifest.image_path(e))
        mp = self.manifest.mask_path(e)
        mask = read_mask(mp).mask.astype(np.uint8) if mp is not None else np.zeros(img.shape[:2], np.uint8)
        if self.image_size and self.transform is None:  # resize once, cache the small copy
            img = cv2.resize(img, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (self.image_size, self.image_size), interpolation=cv2.INTER_NEAREST)
        if self._cache is not None:
            self._cache[i] = (img, mask)
        return img, mask

    def __getitem__(self, i: int) -> dict[str, Any]:
        import cv2

        img, mask = self._load(i)
        if self.transform is not None:
            img, mask = self.transform(img, mask)
            if self.image_size:
                img = cv2.resize(img, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask, (self.image_size, self.image_size), interpolation=cv2.INTER_NEAREST)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        if self.normalize:
            mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
            x = (x - mean) / std
        e = self.entries[i]
        item: dict[str, Any] = {
            "image": x,
            "label": torch.tensor(e.label, dtype=torch.long),
            "target": torch.tensor(self._target(e), dtype=torch.long),
            "index": i,
        }
        if self.with_mask:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)
        return item
