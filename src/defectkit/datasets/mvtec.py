"""Scan and validate an MVTec-AD-style category folder into an immutable index.

Layout (per category)::

    <category>/train/good/*.png
    <category>/test/<defect>/*.png            ("good" for defect-free test images)
    <category>/ground_truth/<defect>/<stem>_mask.png

Masks are matched to images by exact name, never by sorted position. A folder that holds
several categories (the MVTec root) is scanned category by category.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from defectkit.datasets.io import image_info, is_image_file, read_mask
from defectkit.errors import InputError
from defectkit.progress import progress

log = logging.getLogger(__name__)

GOOD = "good"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class FolderLayout:
    """Where a category keeps its images: ``folders`` maps a split folder (relative to the category)
    to the index split it feeds ("train", "test", or "validation"); masks of the "test" folder's
    defect images live under ``ground_truth`` (relative to the category). MVTec AD 2 uses
    ``train``, ``validation`` and ``test_public`` with ``test_public/ground_truth``."""

    folders: tuple[tuple[str, str], ...] = (("train", "train"), ("test", "test"))
    ground_truth: str = "ground_truth"
    required: tuple[str, ...] = SPLITS
    name: str = "MVTec"


MVTEC = FolderLayout()


@dataclass(frozen=True)
class ImageRecord:
    """One image of an MVTec-style category.

    category: category name (folder name), e.g. "bottle".
    split: the dataset's own split, "train" or "test" ("validation" for MVTec AD 2's validation/good).
    defect_type: "good" or the defect folder name, e.g. "broken_large".
    image_path / mask_path: absolute paths; mask_path is None for good images.
    width, height: stored image size in pixels; channels: 1 (grayscale), 3 (RGB) or 4 (RGBA).
    """

    category: str
    split: str
    defect_type: str
    image_path: Path
    mask_path: Path | None
    width: int
    height: int
    channels: int

    @property
    def label(self) -> int:
        """0 for good, 1 for defective."""
        return 0 if self.defect_type == GOOD else 1

    @property
    def stem(self) -> str:
        return self.image_path.stem

    @property
    def name(self) -> str:
        """Unique flat name within a category, e.g. ``test_broken_large_000`` or ``train_good_012``."""
        return f"{self.split}_{self.defect_type}_{self.stem}"


@dataclass(frozen=True)
class DatasetIndex:
    """Immutable index of every image of one or more categories, sorted by (category, split, defect, name).

    root: the folder that was scanned (a category folder or a dataset root).
    warnings: one line per counted warning raised while scanning (also logged).
    layout: "mvtec", "mvtec_ad2" or "visa" (see :mod:`defectkit.datasets.layouts`).
    """

    root: Path
    records: tuple[ImageRecord, ...]
    warnings: tuple[str, ...] = field(default=())
    layout: str = "mvtec"

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({r.category for r in self.records}))

    def defect_types(self, category: str | None = None) -> tuple[str, ...]:
        """Sorted defect type names (without "good")."""
        return tuple(
            sorted(
                {
                    r.defect_type
                    for r in self.records
                    if r.defect_type != GOOD and (category is None or r.category == category)
                }
            )
        )

    def select(self, *, category: str | None = None, split: str | None = None) -> tuple[ImageRecord, ...]:
        return tuple(
            r
            for r in self.records
            if (category is None or r.category == category) and (split is None or r.split == split)
        )

    def category_root(self, category: str) -> Path:
        own = _is_category_dir(self.root) or (self.root / "Data").is_dir()  # (a VisA object folder)
        return self.root if self.root.name == category and own else self.root / category


@dataclass
class _Problems:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning(msg)


def _is_category_dir(path: Path) -> bool:
    return (path / "train").is_dir() or (path / "test").is_dir()


def _images_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def _find_mask(gt_dir: Path, stem: str, listing: dict[Path, dict[str, Path]]) -> Path | None:
    """The mask for image ``stem`` in ``gt_dir``: ``<stem>_mask.<ext>``, else ``<stem>.<ext>``.

    Matched by exact name (extension case-insensitive), never by sorted position. ``listing``
    caches each folder's {stem: path}.
    """
    if gt_dir not in listing:
        listing[gt_dir] = {p.stem: p for p in _images_in(gt_dir)} if gt_dir.is_dir() else {}
    stems = listing[gt_dir]
    return stems.get(f"{stem}_mask") or stems.get(stem)


def _list_candidates(
    cat_dir: Path, problems: _Problems, layout: FolderLayout = MVTEC
) -> list[tuple[str, str, Path]]:
    """(split, defect_type, image path) of every image file, sorted. Two files with one stem in a
    folder (``000.png`` beside ``000.jpg``) would share a name, an id and an output file: an error."""
    out: list[tuple[str, str, Path]] = []
    gt = cat_dir / layout.ground_truth
    split_of = {cat_dir / f: s for f, s in layout.folders}
    tops = [p for p in split_of if p.is_dir()]
    for top in tops + ([gt] if gt.is_dir() else []):
        for defect_dir in sorted(p for p in top.iterdir() if p.is_dir() and p != gt):
            images = _images_in(defect_dir)
            by_stem: dict[str, Path] = {}
            for img in images:
                if img.stem in by_stem:
                    problems.errors.append(
                        f"{img}: same name stem as {by_stem[img.stem].name} in {defect_dir} "
                        "(image names must be unique apart from the extension: rename or remove one)"
                    )
                by_stem.setdefault(img.stem, img)
            if top in split_of:
                out += [(split_of[top], defect_dir.name, img) for img in images]
    return out


@dataclass
class _MaskTally:
    nonbinary: int = 0
    worst_change: int = 0
    zero_one: int = 0


def _check_mask(mask_path: Path, img: Path, defect: str, size: tuple[int, int], problems: _Problems,
                tally: _MaskTally) -> bool:
    """Validate one mask against its image; returns False when it is an error (image unusable)."""
    width, height = size
    try:
        m = read_mask(mask_path)
    except InputError as exc:
        problems.errors.append(str(exc))
        return False
    if m.mask.shape != (height, width):
        problems.errors.append(
            f"{mask_path}: mask size {m.mask.shape[1]}x{m.mask.shape[0]} differs from image "
            f"size {width}x{height} of {img.name}"
        )
        return False
    tally.zero_one += m.zero_one
    if m.nonbinary_pixels:
        tally.nonbinary += 1
        tally.worst_change = max(tally.worst_change, m.area_change)
    if defect == GOOD and m.mask.any():
        problems.warn(f"{mask_path}: non-empty mask ({int(m.mask.sum())} px) for a good image")
    if defect != GOOD and not m.mask.any():
        problems.warn(f"{mask_path}: empty mask for defect image {img.name}")
    return True


def _scan_category(
    cat_dir: Path, problems: _Problems, lenient: bool, layout: FolderLayout = MVTEC
) -> list[ImageRecord]:
    for split in layout.required:
        if not (cat_dir / split).is_dir():
            problems.errors.append(f"{cat_dir / split}: missing '{split}/' folder (expected {layout.name} layout)")
    if problems.errors:
        return []
    gt_root = cat_dir / layout.ground_truth
    gt_rel = layout.ground_truth
    test_rel = next(f for f, s in layout.folders if s == "test")
    records: list[ImageRecord] = []
    listing: dict[Path, dict[str, Path]] = {}
    used_masks: set[Path] = set()
    tally = _MaskTally()
    candidates = _list_candidates(cat_dir, problems, layout)
    if problems.errors:
        return []
    for split, defect, img in progress(candidates, desc=f"scan {cat_dir.name}"):
        mask_path = _find_mask(gt_root / defect, img.stem, listing) if split == "test" else None
        if mask_path is not None:
            used_masks.add(mask_path)  # matched even when the image turns out unreadable
        try:
            width, height, channels = image_info(img)
        except InputError as exc:
            problems.errors.append(str(exc))
            continue
        if defect != GOOD and mask_path is None:
            msg = f"{img}: no mask {gt_rel}/{defect}/{img.stem}_mask.png for this defect image"
            if lenient:
                problems.warn(msg + " (dropped, --lenient)")
            else:
                problems.errors.append(msg)
            continue
        if mask_path is not None and not _check_mask(mask_path, img, defect, (width, height), problems, tally):
            continue
        keep_mask = mask_path.resolve() if mask_path is not None and defect != GOOD else None
        records.append(ImageRecord(cat_dir.name, split, defect, img.resolve(), keep_mask, width, height, channels))
    if tally.zero_one:
        problems.warn(
            f"{gt_root}: {tally.zero_one} mask(s) hold values 0/1 instead of 0/255; read as binary "
            "masks (1 = defect)"
        )
    if tally.nonbinary:
        problems.warn(
            f"{gt_root}: {tally.nonbinary} mask(s) are not binary 0/255; thresholded at >127 "
            f"(largest area change vs >0: {tally.worst_change} px)"
        )
    if gt_root.is_dir():
        for defect_dir in sorted(p for p in gt_root.iterdir() if p.is_dir()):
            for mp in _images_in(defect_dir):
                if mp not in used_masks:
                    problems.warn(f"{mp}: mask without a matching image in {test_rel}/{defect_dir.name}/")
    return records


def scan_mvtec(path: str | Path, *, lenient: bool = False) -> DatasetIndex:
    """Scan and validate a category folder (or an MVTec root holding several) into a DatasetIndex.

    Every image is fully decoded once to check it is readable and to record its size and channels.
    Raises InputError naming the first offending file (with a count of further problems) for
    errors; counted warnings are logged and kept in ``DatasetIndex.warnings``.
    ``lenient=True`` drops defect images without a mask with a warning instead of failing.
    """
    root = check_root(path)
    if _is_category_dir(root):
        cat_dirs = [root]
    else:
        cat_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _is_category_dir(p))
        if not cat_dirs:
            raise InputError(f"{root}: missing 'train/' and 'test/' folders (not an MVTec category or root)")
    problems = _Problems()
    records: list[ImageRecord] = []
    for cat_dir in cat_dirs:
        records.extend(_scan_category(cat_dir, problems, lenient))
    return finish_index(root, records, problems, "mvtec", "train/ or test/")


def check_root(path: str | Path) -> Path:
    """``path`` as a Path; InputError when it is a file or missing."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: is a file; give the dataset (category) folder")
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    return root


def finish_index(root: Path, records: list[ImageRecord], problems: _Problems, layout: str,
                 where: str) -> DatasetIndex:
    """The sorted DatasetIndex, or InputError naming the first error (and how many more) / ``where``
    when no image was found."""
    if problems.errors:
        extra = f" (and {len(problems.errors) - 1} more problem(s))" if len(problems.errors) > 1 else ""
        raise InputError(problems.errors[0] + extra)
    if not records:
        raise InputError(f"{root}: no images found under {where}")
    records.sort(key=lambda r: (r.category, r.split, r.defect_type, r.image_path.name))
    return DatasetIndex(root=root.resolve(), records=tuple(records), warnings=tuple(problems.warnings),
                        layout=layout)


LARGE_SIDE = 1024


def warn_large_images(records: list[ImageRecord], problems: _Problems) -> None:
    """One counted warning per category whose images exceed LARGE_SIDE px on the long side (VisA's
    ~1500x1000 and MVTec AD 2's photos): every model resizes them, but scans and conversions are slower
    and SAM's 1024 px input is a downscale."""
    by_cat: dict[str, list[ImageRecord]] = {}
    for r in records:
        if max(r.width, r.height) > LARGE_SIDE:
            by_cat.setdefault(r.category, []).append(r)
    for cat, big in sorted(by_cat.items()):
        top = max(big, key=lambda r: r.width * r.height)
        problems.warn(
            f"{cat}: {len(big)} image(s) larger than {LARGE_SIDE} px on the long side (largest "
            f"{top.width}x{top.height}, {top.image_path.name}); models resize them, conversions keep full size"
        )
