"""Train-time augmentation (albumentations) for the image-level models; val/test are never augmented.

The transform resizes to the training size first (cheap augmentation on 900 px MVTec images) and
is re-seeded every epoch from (seed, epoch), so a resumed run sees the same augmentations.
"""

from __future__ import annotations

import os

import numpy as np


class TrainAugment:
    """``(image HWC uint8, mask HxW uint8) -> (image, mask)`` at ``size`` x ``size`` pixels.

    hflip/vflip: probabilities; rotate: limit in degrees (border reflected); color_jitter:
    brightness/contrast/saturation strength (hue fixed at +-0.02), 0 disables it.
    """

    def __init__(
        self,
        size: int,
        *,
        hflip: float = 0.5,
        vflip: float = 0.0,
        rotate: float = 10.0,
        color_jitter: float = 0.1,
        seed: int = 0,
    ) -> None:
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else its import asks the package index
        import albumentations as A
        import cv2

        ops: list = [A.Resize(size, size, interpolation=cv2.INTER_AREA)]
        if hflip > 0:
            ops.append(A.HorizontalFlip(p=hflip))
        if vflip > 0:
            ops.append(A.VerticalFlip(p=vflip))
        if rotate > 0:
            ops.append(A.Rotate(limit=(-rotate, rotate), border_mode=cv2.BORDER_REFLECT_101, p=0.5))
        if color_jitter > 0:
            j = color_jitter
            ops.append(
                A.ColorJitter(
                    brightness=(1 - j, 1 + j),
                    contrast=(1 - j, 1 + j),
                    saturation=(1 - j, 1 + j),
                    hue=(-0.02, 0.02),
                    p=0.8,
                )
            )
        self.compose = A.Compose(ops, seed=seed)
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        """Re-seed so that epoch ``epoch`` draws the same augmentations in any run."""
        self.compose.set_random_seed(self.seed * 100003 + epoch)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.compose(image=image, mask=mask)
        return out["image"], out["mask"]


def train_augment(config) -> TrainAugment | None:
    """The train-split augmentation an ``ImageTrainConfig`` asks for (None when ``augment`` is off)."""
    if not config.augment:
        return None
    return TrainAugment(config.image_size, hflip=config.hflip, vflip=config.vflip, rotate=config.rotate,
                        color_jitter=config.color_jitter, seed=config.seed)
