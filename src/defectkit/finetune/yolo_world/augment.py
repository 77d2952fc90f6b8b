"""A transpose augmentation for ultralytics training datasets (objects seen from above).

ultralytics flips images left-right (``fliplr``) and up-down (``flipud``) but has no lossless
90-degree rotation: its ``degrees`` rotates by any angle, fills the corners and loosens boxes.
:class:`RandomTranspose` swaps the x and y axes of a square training image and of its labels;
with both flips at 0.5 every one of the 8 rotations and mirrors of the square is equally likely,
which suits categories photographed from above (bottle, hazelnut, metal nut, screw): a defect seen
at the top of the training images is then also learned at the sides.

Import only after :func:`defectkit.finetune.yolo_world.env.import_ultralytics` (it touches no
ultralytics module itself, but is used on ultralytics datasets).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np


class RandomTranspose:
    """Swap x and y with probability ``p`` (an ultralytics-style transform on a labels dict).

    ``labels["img"]``: HxWxC uint8 (square; a non-square image is left as it is);
    ``labels["instances"]``: ultralytics ``Instances`` (boxes in any format, pixels or
    normalised, segments Nx K x 2 and keypoints N x K x 2|3 as X,Y first). Uses Python's
    ``random`` like ultralytics' own transforms, so seeded runs repeat.
    """

    def __init__(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"transpose probability must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        img = labels["img"]
        if self.p == 0.0 or img.shape[0] != img.shape[1] or random.random() >= self.p:
            return labels
        labels["img"] = np.ascontiguousarray(np.swapaxes(img, 0, 1))
        instances = labels.get("instances")
        if instances is not None:
            instances.convert_bbox(format="xyxy")
            boxes = instances.bboxes[:, [1, 0, 3, 2]]
            segments = instances.segments[..., ::-1] if len(instances.segments) else instances.segments
            keypoints = instances.keypoints
            if keypoints is not None:
                keypoints = keypoints.copy()
                keypoints[..., [0, 1]] = keypoints[..., [1, 0]]
            instances.update(np.ascontiguousarray(boxes), np.ascontiguousarray(segments), keypoints=keypoints)
        return labels

    def __repr__(self) -> str:
        return f"RandomTranspose(p={self.p})"


def add_transpose(dataset: Any, p: float) -> int:
    """Insert :class:`RandomTranspose` before the final ``Format`` step of ``dataset``'s transforms,
    also in the transforms it rebuilds when mosaic closes. ``dataset``: an ultralytics training
    dataset or a ``ConcatDataset`` of them (grounding + detection). Changes only that object.
    Returns how many datasets got the transform (0 when ``p`` is 0)."""
    if p <= 0:
        return 0
    parts = getattr(dataset, "datasets", None) or [dataset]
    done = 0
    for ds in parts:
        if getattr(ds, "transforms", None) is None or not hasattr(ds, "build_transforms"):
            continue
        build = ds.build_transforms

        def build_with_transpose(hyp=None, _build=build):
            transforms = _build(hyp)
            transforms.insert(len(transforms.transforms) - 1, RandomTranspose(p))
            return transforms

        ds.build_transforms = build_with_transpose  # instance attribute: close_mosaic keeps it
        ds.transforms.insert(len(ds.transforms.transforms) - 1, RandomTranspose(p))
        done += 1
    return done
