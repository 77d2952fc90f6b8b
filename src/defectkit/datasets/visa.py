"""Scan a VisA dataset (root or one object folder) into the same index as MVTec AD.

Layout::

    <root>/split_csv/1cls.csv                  header object,split,label,image,mask
    <root>/<object>/Data/Images/Normal/*.JPG   label "normal"  -> defect type "good"
    <root>/<object>/Data/Images/Anomaly/*.JPG  label "anomaly" -> defect type "anomaly"
    <root>/<object>/Data/Masks/Anomaly/*.png   masks 0/1 (or 0/255)

Image and mask paths in the CSV are relative to the root; the category is the object. Masks are
read with the common rule (:func:`defectkit.datasets.io.mask_cut`: largest value < 128 -> any
non-zero pixel is defect, else > 127); masks holding values other than 0, 1 and 255 are counted.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectkit.datasets.io import image_info, read_mask
from defectkit.datasets.mvtec import (
    GOOD,
    DatasetIndex,
    ImageRecord,
    _Problems,
    check_root,
    finish_index,
    warn_large_images,
)
from defectkit.errors import InputError
from defectkit.progress import progress

log = logging.getLogger(__name__)

CSV = "split_csv/1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": GOOD, "anomaly": "anomaly"}


def visa_root(path: Path) -> tuple[Path, str | None] | None:
    """(VisA root, object or None) when ``path`` is a VisA root (has ``split_csv/``) or an object folder
    (``Data/Images`` beside a root's ``split_csv/``); None otherwise."""
    if (path / "split_csv").is_dir():
        return path, None
    if (path / "Data" / "Images").is_dir() and (path.parent / "split_csv").is_dir():
        return path.parent, path.name
    return None


@dataclass
class _Tally:
    odd_values: int = 0
    odd_example: str = ""
    zero_one: int = 0


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every data row; InputError for a missing file or wrong header."""
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: missing (a VisA root holds split_csv/1cls.csv)")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = tuple(h.strip() for h in reader.fieldnames or ())
            if not set(COLUMNS) <= set(header):
                raise InputError(f"{csv_path}: header {list(header)} lacks {sorted(set(COLUMNS) - set(header))}")
            return [(n, {k.strip(): (v or "").strip() for k, v in row.items() if k}) for n, row in
                    enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{csv_path}: cannot read ({exc})") from exc


def _check_mask(mask: Path, img: ImageRecord, where: str, problems: _Problems, tally: _Tally) -> bool:
    try:
        m = read_mask(mask)
    except InputError as exc:
        problems.errors.append(f"{where}: {exc}")
        return False
    if m.mask.shape != (img.height, img.width):
        problems.errors.append(f"{where}: mask {mask} size {m.mask.shape[1]}x{m.mask.shape[0]} differs from "
                               f"image size {img.width}x{img.height}")
        return False
    from PIL import Image

    with Image.open(mask) as im:
        values = np.unique(np.asarray(im.convert("L") if im.mode not in ("L", "1", "I", "I;16") else im))
    odd = sorted(set(values.tolist()) - {0, 1, 255})
    if odd:
        tally.odd_values += 1
        tally.odd_example = tally.odd_example or f"{mask.name}: {odd[:5]}"
    tally.zero_one += m.zero_one
    if not m.mask.any():
        problems.warn(f"{where}: empty mask {mask} for anomaly image {img.image_path.name}")
    return True


def _row_record(root: Path, n: int, row: dict[str, str], csv_path: Path, problems: _Problems,
                tally: _Tally, lenient: bool) -> ImageRecord | None:
    where = f"{csv_path} line {n}"
    split, label = row["split"].lower(), row["label"].lower()
    if split not in ("train", "test") or label not in LABELS:
        problems.errors.append(f"{where}: split {row['split']!r} / label {row['label']!r} "
                               "(expected train|test and normal|anomaly)")
        return None
    img = root / row["image"]
    for col in ("image", "mask"):  # paths are taken relative to the object folder (the category root)
        if row[col] and Path(row[col]).parts[0] != row["object"]:
            problems.errors.append(f"{where}: {col} {row[col]} is not inside the object's folder {row['object']}/")
            return None
    if not row["image"] or not img.is_file():
        problems.errors.append(f"{where}: image {row['image'] or '(empty)'} not found under {root}")
        return None
    try:
        w, h, c = image_info(img)
    except InputError as exc:
        problems.errors.append(f"{where}: {exc}")
        return None
    defect = LABELS[label]
    rec = ImageRecord(row["object"], split, defect, img.resolve(), None, w, h, c)
    if defect == GOOD:
        return rec
    mask = root / row["mask"] if row["mask"] else None
    if mask is None or not mask.is_file():
        msg = f"{where}: mask {row['mask'] or '(empty)'} not found for anomaly image {row['image']}"
        if lenient:
            problems.warn(msg + " (dropped, --lenient)")
        else:
            problems.errors.append(msg)
        return None
    if not _check_mask(mask, rec, where, problems, tally):
        return None
    return ImageRecord(rec.category, split, defect, rec.image_path, mask.resolve(), w, h, c)


def visa_objects(root: Path) -> tuple[str, ...]:
    """The sorted objects (categories) ``split_csv/1cls.csv`` of the VisA root ``root`` lists."""
    return tuple(sorted({row["object"] for _, row in _read_rows(root / CSV) if row["object"]}))


def scan_visa(path: str | Path, *, lenient: bool = False) -> DatasetIndex:
    """Scan a VisA root (every object of ``split_csv/1cls.csv``) or one object folder (its rows only).

    Every image is decoded once; a row whose image or mask is missing, or whose mask size differs,
    is an error naming the CSV line and the path; masks holding values other than 0/1/255 and
    images larger than 1024 px are counted warnings. Layout "visa".
    """
    where = check_root(path)
    found = visa_root(where)
    if found is None:
        raise InputError(f"{where}: not a VisA root (no split_csv/) or object folder (no Data/Images)")
    root, only = found
    csv_path = root / CSV
    rows = [(n, r) for n, r in _read_rows(csv_path) if only is None or r["object"] == only]
    if not rows:
        raise InputError(f"{csv_path}: no rows" + (f" for object {only!r}" if only else ""))
    problems, tally = _Problems(), _Tally()
    records, seen = [], {}
    for n, row in progress(rows, desc="scan visa"):
        rec = _row_record(root, n, row, csv_path, problems, tally, lenient)
        if rec is None:
            continue
        key = (rec.category, rec.name)
        if key in seen:
            problems.errors.append(f"{csv_path} line {n}: {row['image']} has the same name {rec.name!r} as "
                                   f"line {seen[key]} (each image once)")
            continue
        seen[key] = n
        records.append(rec)
    if tally.zero_one:
        problems.warn(f"{csv_path}: {tally.zero_one} mask(s) hold values 0/1 (VisA's own format); read as "
                      "binary masks (1 = defect)")
    if tally.odd_values:
        problems.warn(f"{csv_path}: {tally.odd_values} mask(s) hold values other than 0/1/255 (e.g. "
                      f"{tally.odd_example}); read as: largest value < 128 -> any non-zero is defect, "
                      "else > 127")
    warn_large_images(records, problems)
    return finish_index(where, records, problems, "visa", CSV)
