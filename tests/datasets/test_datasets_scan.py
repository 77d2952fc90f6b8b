"""scan_mvtec: indexing, name matching, and every validation case of the foundation issue."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.io import read_mask
from defectkit.datasets.mvtec import scan_mvtec
from defectkit.errors import InputError


def _img(path: Path, size: int = 16, value: int = 100, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size, size, 3) if mode == "RGB" else (size, size), value, np.uint8)
    Image.fromarray(arr).save(path)


def _mask(path: Path, size: int = 16, box: tuple[int, int, int, int] = (2, 2, 6, 6), value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size, size), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = value
    Image.fromarray(arr).save(path)


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    """A hand-built category: 2 train-good, 1 test-good, 2 'crack' images with masks."""
    root = tmp_path / "widget"
    _img(root / "train/good/000.png")
    _img(root / "train/good/001.png")
    _img(root / "test/good/000.png")
    _img(root / "test/crack/000.png")
    _img(root / "test/crack/001.png")
    _mask(root / "ground_truth/crack/000_mask.png", box=(0, 0, 4, 4))
    _mask(root / "ground_truth/crack/001_mask.png", box=(8, 8, 16, 16))
    return root


def test_scan_counts_and_fields(cat: Path) -> None:
    idx = scan_mvtec(cat)
    assert [(r.split, r.defect_type, r.image_path.name) for r in idx.records] == [
        ("test", "crack", "000.png"), ("test", "crack", "001.png"), ("test", "good", "000.png"),
        ("train", "good", "000.png"), ("train", "good", "001.png"),
    ]
    crack = idx.records[0]
    assert crack.category == "widget" and crack.label == 1 and crack.name == "test_crack_000"
    assert (crack.width, crack.height, crack.channels) == (16, 16, 3)
    assert idx.records[2].mask_path is None and idx.records[2].label == 0
    assert idx.defect_types() == ("crack",)
    assert idx.warnings == ()


def test_masks_matched_by_name_not_position(cat: Path) -> None:
    # 001's mask is listed first when sorted by size or mtime: matching must still use names
    (cat / "ground_truth/crack/000_mask.png").rename(cat / "ground_truth/crack/tmp.png")
    _mask(cat / "ground_truth/crack/000_mask.png", box=(0, 0, 1, 1))
    (cat / "ground_truth/crack/tmp.png").unlink()
    idx = scan_mvtec(cat)
    for r in idx.select(split="test"):
        if r.defect_type == "crack":
            assert r.mask_path.name == f"{r.stem}_mask.png"
    assert read_mask(idx.records[0].mask_path).mask.sum() == 1
    assert read_mask(idx.records[1].mask_path).mask.sum() == 64


def test_extensions_case_insensitive(cat: Path) -> None:
    _img(cat / "train/good/002.PNG")
    _img(cat / "train/good/003.JPG")
    (cat / "train/good/notes.txt").write_text("not an image")
    names = [r.image_path.name for r in scan_mvtec(cat).select(split="train")]
    assert names == ["000.png", "001.png", "002.PNG", "003.JPG"]


def test_defect_image_without_mask_is_error_naming_file(cat: Path) -> None:
    (cat / "ground_truth/crack/001_mask.png").unlink()
    with pytest.raises(InputError, match=r"test/crack/001\.png: no mask ground_truth/crack/001_mask\.png"):
        scan_mvtec(cat)


def test_lenient_drops_image_with_counted_warning(cat: Path) -> None:
    (cat / "ground_truth/crack/001_mask.png").unlink()
    idx = scan_mvtec(cat, lenient=True)
    assert [r.name for r in idx.records if r.defect_type == "crack"] == ["test_crack_000"]
    assert len(idx.warnings) == 1 and "dropped" in idx.warnings[0]


def test_mask_without_image_warns(cat: Path) -> None:
    _mask(cat / "ground_truth/crack/007_mask.png")
    idx = scan_mvtec(cat)
    assert any("007_mask.png: mask without a matching image" in w for w in idx.warnings)
    assert len(idx.records) == 5


def test_mask_size_mismatch_is_error(cat: Path) -> None:
    _mask(cat / "ground_truth/crack/000_mask.png", size=20)
    with pytest.raises(InputError, match=r"000_mask\.png: mask size 20x20 differs from image size 16x16"):
        scan_mvtec(cat)


def test_nonbinary_masks_thresholded_with_counted_warning(cat: Path) -> None:
    arr = np.zeros((16, 16), np.uint8)
    arr[0:4, 0:4] = 255
    arr[4:6, 0:4] = 100  # anti-aliased rim: > 0 but not > 127
    Image.fromarray(arr).save(cat / "ground_truth/crack/000_mask.png")
    idx = scan_mvtec(cat)
    warn = [w for w in idx.warnings if "not binary" in w]
    assert len(warn) == 1 and "1 mask(s)" in warn[0] and "8 px" in warn[0]
    assert read_mask(idx.records[0].mask_path).mask.sum() == 16


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "garbage"])
def test_unreadable_image_is_error_naming_it(cat: Path, damage: str) -> None:
    p = cat / "test/good/000.png"
    data = p.read_bytes()
    p.write_bytes({"zero-byte": b"", "truncated": data[: len(data) // 2], "garbage": b"not a png at all"}[damage])
    with pytest.raises(InputError, match=r"test/good/000\.png: "):
        scan_mvtec(cat)


def test_empty_mask_for_defect_image_warns(cat: Path) -> None:
    _mask(cat / "ground_truth/crack/001_mask.png", box=(0, 0, 0, 0))
    idx = scan_mvtec(cat)
    assert any("001_mask.png: empty mask for defect image" in w for w in idx.warnings)


def test_nonempty_mask_for_good_image_warns(cat: Path) -> None:
    _mask(cat / "ground_truth/good/000_mask.png")
    idx = scan_mvtec(cat)
    assert any("good/000_mask.png: non-empty mask (16 px) for a good image" in w for w in idx.warnings)
    assert all(r.mask_path is None for r in idx.records if r.defect_type == "good")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split_folder_is_error(cat: Path, missing: str) -> None:
    shutil.rmtree(cat / missing)
    with pytest.raises(InputError, match=f"missing '{missing}/' folder"):
        scan_mvtec(cat)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dataset folder not found"):
        scan_mvtec(tmp_path / "nope")
    with pytest.raises(InputError, match="not an MVTec category or root"):
        scan_mvtec(tmp_path)


def test_root_with_several_categories(cat: Path) -> None:
    shutil.copytree(cat, cat.parent / "gadget")
    idx = scan_mvtec(cat.parent)
    assert idx.categories == ("gadget", "widget")
    assert len(idx.select(category="gadget")) == len(idx.select(category="widget")) == 5


def test_grayscale_and_16bit_and_palette_masks(cat: Path) -> None:
    _img(cat / "train/good/000.png", mode="L")
    arr16 = np.zeros((16, 16), np.uint16)
    arr16[0:4, 0:4] = 65535
    Image.fromarray(arr16).save(cat / "ground_truth/crack/000_mask.png")
    pal = Image.fromarray((np.arange(256, dtype=np.uint8).reshape(16, 16) >= 128).astype(np.uint8) * 255).convert("P")
    pal.save(cat / "ground_truth/crack/001_mask.png")
    idx = scan_mvtec(cat)
    gray = [r for r in idx.records if r.split == "train" and r.stem == "000"][0]
    assert gray.channels == 1
    assert read_mask(idx.records[0].mask_path).mask.sum() == 16
    assert read_mask(idx.records[1].mask_path).mask.sum() == 128
