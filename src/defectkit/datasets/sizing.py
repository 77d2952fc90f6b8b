"""Input size chosen by the smallest defect: a detector cannot find what its input shrinks away.

YOLO's finest feature map has stride 8, so an object narrower than ~8 input pixels is hard to
detect; SAM's mask decoder works on a 4x-upsampled 1/16 grid. :func:`image_size_for` picks the
smallest input side (a multiple of ``stride``) at which the smallest train-split defect instance
keeps ``min_side`` pixels across, capped at the images' own size.

Conventions: sizes are in pixels of the stored image; "side" of an instance is the shorter side
of its bounding box.
"""

from __future__ import annotations

import math

import numpy as np

from defectkit.datasets.split import SplitManifest


def instance_sides(mask: np.ndarray, min_area: int = 16) -> list[int]:
    """Shorter bounding-box side (pixels) of each 8-connected component of an HxW bool mask
    with at least ``min_area`` pixels."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [int(min(stats[i, 2], stats[i, 3])) for i in range(1, n) if stats[i, 4] >= min_area]


def size_for_side(side: float, image_side: int, min_side: float = 8.0, stride: int = 32, floor: int = 128) -> int:
    """Smallest multiple of ``stride`` (at least ``floor``) at which an instance ``side`` pixels
    across in an image ``image_side`` pixels long keeps ``min_side`` pixels; never above the
    image side rounded up to ``stride``."""
    if side <= 0 or image_side <= 0:
        raise ValueError(f"side and image_side must be > 0, got {side} and {image_side}")
    cap = math.ceil(image_side / stride) * stride
    need = math.ceil(min_side * image_side / side / stride) * stride
    return int(min(cap, max(floor, need)))


def image_size_for(manifest: SplitManifest, min_side: float = 8.0, stride: int = 32, min_area: int = 16) -> int:
    """Input size (longest side, pixels) for a model trained on ``manifest``: the smallest train
    or val defect instance keeps ``min_side`` pixels (see :func:`size_for_side`). A split with no
    defect instance on the train side gets the largest image side, capped to a multiple of
    ``stride``."""
    from defectkit.datasets.io import read_mask

    longest = max(max(e.width, e.height) for e in manifest.entries)
    sides = []
    for e in manifest.entries:
        if e.split in ("train", "val") and e.mask:
            for s in instance_sides(read_mask(manifest.dataset / e.mask).mask, min_area):
                sides.append(s * longest / max(e.width, e.height))
    if not sides:
        return math.ceil(longest / stride) * stride
    return size_for_side(min(sides), longest, min_side, stride)
