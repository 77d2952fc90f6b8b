"""Synthetic generator: determinism, layout, and mask/image consistency; the dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.describe import count_components, describe_dataset, format_card
from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.synth import SynthConfig, generate_synthetic

CFG = SynthConfig(n_train=3, n_test_good=2, n_test_per_defect=3, size=48, seed=5)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_identical_bytes(tmp_path: Path) -> None:
    a = _files(generate_synthetic(tmp_path / "a", CFG))
    b = _files(generate_synthetic(tmp_path / "b", CFG))
    assert a == b
    assert len([k for k in a if k.endswith("_mask.png")]) == 9
    c = _files(generate_synthetic(tmp_path / "c", SynthConfig(**{**CFG.__dict__, "seed": 6})))
    assert a.keys() == c.keys() and a["train/good/000.png"] != c["train/good/000.png"]


def test_layout_and_masks_match_images(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path, CFG)
    assert sorted(p.name for p in (root / "test").iterdir()) == ["broken_large", "broken_small", "contamination", "good"]
    for img_path in sorted((root / "test").glob("*/*.png")):
        img = np.asarray(Image.open(img_path))
        assert img.shape == (48, 48, 3) and img.dtype == np.uint8
        if img_path.parent.name == "good":
            continue
        mask = np.asarray(Image.open(root / "ground_truth" / img_path.parent.name / f"{img_path.stem}_mask.png"))
        assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255} and (mask > 0).any()
    meta = json.loads((root / "defectkit_synth.json").read_text())
    assert meta["seed"] == 5 and meta["size"] == 48


def test_defects_change_the_image_where_the_mask_is() -> None:
    from defectkit.datasets.synth import render_sample

    for defect in ("broken_large", "broken_small", "contamination"):
        good, _ = render_sample(96, None, np.random.default_rng([1, 2]))
        bad, mask = render_sample(96, defect, np.random.default_rng([1, 2]))
        diff = np.abs(good.astype(int) - bad.astype(int)).sum(2)
        assert mask.any()
        assert diff[mask].mean() > 5 * max(diff[~mask].mean(), 0.5), defect


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="size"):
        SynthConfig(size=8)
    with pytest.raises(ValueError, match="n_train"):
        SynthConfig(n_train=-1)


def test_describe_known_counts(tiny_dataset: Path) -> None:
    card = describe_dataset(scan_mvtec(tiny_dataset))
    (cat,) = card["categories"]
    assert cat["n_defect_classes"] == 3
    assert cat["defect_classes"] == ["broken_large", "broken_small", "contamination"]
    assert cat["counts"] == {"test": {"good": 4, "broken_large": 4, "broken_small": 4, "contamination": 4},
                             "train": {"good": 8}}
    assert cat["totals"] == {"test": 16, "train": 8, "all": 24}
    assert cat["image_sizes"] == {"64x64": 24} and cat["size_varies"] is False
    assert cat["channels"] == {"3": 24}
    for defect in cat["defect_classes"]:
        s = cat["masks"][defect]
        assert s["n_masks"] == 4
        assert 0 < s["area_fraction"]["min"] <= s["area_fraction"]["mean"] <= s["area_fraction"]["max"] < 0.5
        assert s["components"]["min"] >= 1
    text = format_card(card)
    assert "Defect classes: 3 (broken_large, broken_small, contamination)" in text
    assert "64x64 (24)" in text and "[RGB]" in text


def test_count_components() -> None:
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True
    m[2, 2] = True  # diagonal neighbour: same 8-connected component
    m[6:8, 6:9] = True
    assert count_components(m) == 2
    assert count_components(np.zeros((4, 4), bool)) == 0
