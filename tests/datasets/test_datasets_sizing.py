"""Input size chosen by the smallest defect instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectkit.datasets.io import read_mask
from defectkit.datasets.sizing import image_size_for, instance_sides, size_for_side
from defectkit.datasets.split import load_split


def test_instance_sides_shorter_side_and_min_area() -> None:
    mask = np.zeros((50, 50), bool)
    mask[5:10, 5:30] = True  # 5 x 25 -> 5
    mask[20:40, 20:32] = True  # 20 x 12 -> 12
    mask[45, 45] = True  # 1 px: below min_area
    assert sorted(instance_sides(mask, min_area=4)) == [5, 12]


@pytest.mark.parametrize(
    ("side", "image", "expected"),
    [
        (25, 900, 288),  # a 25 px chip of a 900 px bottle keeps 8 px at 288
        (100, 900, 128),  # floor
        (2, 900, 928),  # capped at the image side (rounded up to the stride)
        (60, 1024, 160),
    ],
)
def test_size_for_side(side: int, image: int, expected: int) -> None:
    size = size_for_side(side, image)
    assert size == expected and size % 32 == 0
    if 128 < size < 928:
        assert side * size / image >= 8 > side * (size - 32) / image


def test_size_for_side_rejects_empty() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        size_for_side(0, 900)


def test_image_size_for_a_split(tiny_split: Path) -> None:
    manifest = load_split(tiny_split)
    sides = [s for e in manifest.entries if e.split != "test" and e.mask
             for s in instance_sides(read_mask(manifest.dataset / e.mask).mask)]
    size = image_size_for(manifest, min_side=8)
    assert size == size_for_side(min(sides), 64)
    assert image_size_for(manifest, min_side=1000) == 64  # capped at the images' size
