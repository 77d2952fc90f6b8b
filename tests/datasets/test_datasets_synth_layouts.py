"""``defectkit synth`` with several categories (the tile texture) and the MVTec AD 2 / VisA layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.synth import SynthConfig, generate_synthetic
from defectkit.datasets.synth_layouts import Job, place
from defectkit.datasets.synth_texture import TILE_DEFECTS, render_tile

BASE = dict(n_train=5, n_test_good=2, n_test_per_defect=2, size=40, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tile_defects_change_the_image_exactly_where_the_mask_is() -> None:
    for defect in TILE_DEFECTS:
        for seed in range(3):
            good, empty = render_tile(96, None, np.random.default_rng([seed, 9]))
            bad, mask = render_tile(96, defect, np.random.default_rng([seed, 9]))
            diff = np.abs(good.astype(int) - bad.astype(int)).sum(2)
            assert not empty.any() and mask.any() and good.dtype == np.uint8 and good.shape == (96, 96, 3)
            assert (diff[~mask] == 0).all(), defect  # nothing outside the mask changed
            assert (diff[mask] > 0).mean() > 0.9, defect  # (almost) every masked pixel changed
    crack = render_tile(96, "crack", np.random.default_rng([0, 1]))[1]
    strip = render_tile(96, "glue_strip", np.random.default_rng([0, 1]))[1]
    assert crack.mean() < 0.05 < strip.mean()  # a thin polyline vs a band


def test_several_categories_in_the_mvtec_layout_keep_the_bottle_unchanged(tmp_path: Path) -> None:
    single = generate_synthetic(tmp_path / "one", SynthConfig(**BASE))
    root = generate_synthetic(tmp_path / "two", SynthConfig(**BASE, categories=("bottle", "tile")))
    assert single == tmp_path / "one" / "bottle" and root == tmp_path / "two"
    bottle = {k: v for k, v in _files(root / "bottle").items() if k.endswith(".png")}
    assert bottle == {k: v for k, v in _files(single).items() if k.endswith(".png")}
    assert sorted(p.name for p in (root / "tile/test").iterdir()) == ["crack", "glue_strip", "good"]
    assert sorted(p.name for p in (root / "tile/ground_truth").iterdir()) == ["crack", "glue_strip"]
    mask = np.asarray(Image.open(root / "tile/ground_truth/crack/001_mask.png"))
    assert set(np.unique(mask)) == {0, 255}


@pytest.mark.parametrize("layout", ["mvtec_ad2", "visa"])
def test_layouts_are_deterministic(tmp_path: Path, layout: str) -> None:
    cfg = SynthConfig(**BASE, categories=("tile", "bottle"), layout=layout)
    a, b = _files(generate_synthetic(tmp_path / "a", cfg)), _files(generate_synthetic(tmp_path / "b", cfg))
    assert a == b
    c = _files(generate_synthetic(tmp_path / "c", SynthConfig(**{**BASE, "seed": 4}, categories=("tile", "bottle"),
                                                              layout=layout)))
    assert a.keys() == c.keys() and any(a[k] != c[k] for k in a if not k.endswith((".json", ".csv")))


def test_ad2_file_layout(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path, SynthConfig(**BASE, categories=("tile",), layout="mvtec_ad2"))
    assert root == tmp_path / "tile"
    files = sorted(_files(root))
    assert [f for f in files if f.startswith(("train/", "validation/"))] == [
        "train/good/000.png", "train/good/001.png", "train/good/002.png", "train/good/003.png",
        "validation/good/000.png"]
    assert [f for f in files if f.startswith("test_public/bad/")] == [
        "test_public/bad/crack_000.png", "test_public/bad/crack_001.png",
        "test_public/bad/glue_strip_000.png", "test_public/bad/glue_strip_001.png"]
    assert "test_public/ground_truth/bad/glue_strip_001_mask.png" in files
    assert [f for f in files if f.startswith("test_private")] == [
        "test_private/000.png", "test_private/001.png", "test_private_mixed/000.png", "test_private_mixed/001.png"]
    # the same pixels as the MVTec layout's train/good/004 and test/crack/001
    mv = generate_synthetic(tmp_path / "mv", SynthConfig(**BASE, categories=("tile",)))
    assert (root / "validation/good/000.png").read_bytes() == (mv / "train/good/004.png").read_bytes()
    assert (root / "test_public/bad/crack_001.png").read_bytes() == (mv / "test/crack/001.png").read_bytes()


def test_visa_file_layout_and_csv(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path, SynthConfig(**BASE, categories=("tile",), layout="visa"))
    assert root == tmp_path
    rows = (root / "split_csv/1cls.csv").read_text().splitlines()
    assert rows[0] == "object,split,label,image,mask"
    assert rows[1] == "tile,train,normal,tile/Data/Images/Normal/0000.JPG,"
    assert rows[6] == "tile,test,normal,tile/Data/Images/Normal/0005.JPG,"
    assert rows[-1] == "tile,test,anomaly,tile/Data/Images/Anomaly/003.JPG,tile/Data/Masks/Anomaly/003.png"
    assert len(rows) == 1 + 5 + 2 + 4
    img = Image.open(root / "tile/Data/Images/Anomaly/000.JPG")
    assert img.format == "JPEG" and img.size == (40, 40)
    mask = np.asarray(Image.open(root / "tile/Data/Masks/Anomaly/000.png"))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}


def test_place_is_pure_and_names_are_unique() -> None:
    defects = ("crack", "glue_strip")
    for layout in ("mvtec", "mvtec_ad2", "visa"):
        jobs = [Job("t", "train", None, i) for i in range(5)] + [Job("t", "test", None, i) for i in range(2)]
        jobs += [Job("t", "test", d, i) for d in defects for i in range(3)]
        placed = [place(j, layout, defects, 5, 3) for j in jobs]
        assert len({p.image for p in placed}) == len(jobs)
        assert [p.mask is not None for p in placed] == [j.defect is not None for j in jobs]
    with pytest.raises(ValueError, match="unknown layout"):
        place(Job("t", "train", None, 0), "coco", defects, 5, 3)


def test_config_and_cli(tmp_path: Path, run_cli) -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        SynthConfig(layout="kitti")
    with pytest.raises(ValueError, match="each name once"):
        SynthConfig(categories=("tile", "tile"))
    with pytest.raises(ValueError, match="bad category name"):
        SynthConfig(categories=("a/b",))
    code, out, _ = run_cli("synth", tmp_path / "d", "--categories", "bottle,tile", "--layout", "visa",
                           "--n-train", "2", "--n-test-good", "1", "--n-test-per-defect", "1", "--size", "32")
    assert code == 0 and out.strip() == str(tmp_path / "d")
    code, out, _ = run_cli("describe", tmp_path / "d")
    assert code == 0 and "Dataset: bottle" in out and "Dataset: tile" in out and "Layout: VisA" in out
    code, _, err = run_cli("synth", tmp_path / "e", "--categories", "tile,tile")
    assert code == 2 and "synth: categories: each name once" in err
    code, _, err = run_cli("synth", tmp_path / "f", "--categories", "all")  # not a category named "all"
    assert code == 2 and "synth: categories: 'all' is reserved" in err and not (tmp_path / "f").exists()
    with pytest.raises(ValueError, match="'report' is reserved"):
        SynthConfig(categories=("bottle", "report"))
