"""Scan an MVTec AD 2 category folder (or a root holding several) into the same index as MVTec AD.

Layout (per category)::

    <category>/train/good/*.png
    <category>/validation/good/*.png                      -> split "validation"
    <category>/test_public/{good,bad}/*.png                -> split "test", defect types "good"/"bad"
    <category>/test_public/ground_truth/bad/<stem>_mask.png
    <category>/test_private/, test_private_mixed/          images without masks: skipped (one warning)

``validation/good`` keeps its own split name in the index; :func:`defectkit.datasets.split.make_split`
puts those images in val (the dataset's own validation set) instead of carving val goods from train.
"""

from __future__ import annotations

import logging
from pathlib import Path

from defectkit.datasets.io import is_image_file
from defectkit.datasets.mvtec import (
    DatasetIndex,
    FolderLayout,
    ImageRecord,
    _Problems,
    _scan_category,
    check_root,
    finish_index,
    warn_large_images,
)
from defectkit.errors import InputError

log = logging.getLogger(__name__)

AD2 = FolderLayout(
    folders=(("train", "train"), ("validation", "validation"), ("test_public", "test")),
    ground_truth="test_public/ground_truth",
    required=("train", "test_public"),
    name="MVTec AD 2",
)
PRIVATE = ("test_private", "test_private_mixed")
_MARKERS = ("test_public", "validation", *PRIVATE)


def is_ad2_category(path: Path) -> bool:
    """True for a folder with ``train/`` and one of MVTec AD 2's own folders, and no MVTec ``test/``."""
    return (
        (path / "train").is_dir()
        and not (path / "test").is_dir()
        and any((path / m).is_dir() for m in _MARKERS)
    )


def ad2_category_dirs(root: Path) -> list[Path]:
    """``[root]`` for a category folder, else its MVTec AD 2 category subfolders (sorted)."""
    if is_ad2_category(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_ad2_category(p))


def _warn_private(root: Path, cat_dirs: list[Path], problems: _Problems) -> None:
    found = [c / f for c in cat_dirs for f in PRIVATE if (c / f).is_dir()]
    if found:
        n = sum(1 for d in found for p in d.rglob("*") if is_image_file(p))
        names = ", ".join(f"{f}/" for f in PRIVATE if any(d.name == f for d in found))  # only those found
        problems.warn(
            f"{root}: skipped {len(found)} folder(s) {names} ({n} images without ground "
            "truth: MVTec AD 2's private test sets cannot be evaluated here)"
        )


def scan_mvtec_ad2(path: str | Path, *, lenient: bool = False) -> DatasetIndex:
    """Scan and validate an MVTec AD 2 category folder (or root) into a DatasetIndex (layout "mvtec_ad2").

    Same checks as :func:`defectkit.datasets.mvtec.scan_mvtec` (every image decoded, masks matched
    by name, errors raised as one InputError); ``test_private*`` folders are skipped with one
    counted warning, images larger than 1024 px get one counted warning per category.
    """
    root = check_root(path)
    cat_dirs = ad2_category_dirs(root)
    if not cat_dirs:
        raise InputError(f"{root}: no MVTec AD 2 category (train/ with test_public/ or validation/)")
    problems = _Problems()
    records: list[ImageRecord] = []
    for cat_dir in cat_dirs:
        records.extend(_scan_category(cat_dir, problems, lenient, AD2))
    _warn_private(root, cat_dirs, problems)
    warn_large_images(records, problems)
    return finish_index(root, records, problems, "mvtec_ad2", "train/, validation/ or test_public/")
