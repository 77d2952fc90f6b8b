"""Split manifest: protocol rules, determinism, fingerprint checks, and the torch Dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.split import SplitConfig, load_split, make_split
from defectkit.datasets.synth import SynthConfig, generate_synthetic
from defectkit.errors import InputError


@pytest.fixture(scope="module")
def bottle_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MVTec bottle's test counts at 32 px: 20 test-good and 20/22/21 per defect (plus 30 train-good)."""
    cfg = SynthConfig(n_train=30, n_test_good=20, n_test_per_defect=20, size=32, seed=3)
    root = generate_synthetic(tmp_path_factory.mktemp("bl"), cfg)
    for defect, extra in (("broken_small", 2), ("contamination", 1)):  # top up to 22 and 21
        for i in range(extra):
            for sub, suffix in (("test", ".png"), ("ground_truth", "_mask.png")):
                src = root / sub / defect / f"{i:03d}{suffix}"
                (root / sub / defect / f"{20 + i:03d}{suffix}").write_bytes(src.read_bytes())
    return root


def test_homework_protocol_counts(bottle_like: Path) -> None:
    m = make_split(scan_mvtec(bottle_like), SplitConfig(defects_to_train=5, val_fraction=0.2, seed=0))
    c = m.counts()
    assert c["test"] == {"broken_large": 15, "broken_small": 17, "contamination": 16, "good": 20}
    assert sum(c["test"].values()) == 68
    # train side = 30 good + 5 per defect; val takes round(n*0.2) per type from it
    assert c["val"] == {"broken_large": 1, "broken_small": 1, "contamination": 1, "good": 6}
    assert c["train"] == {"broken_large": 4, "broken_small": 4, "contamination": 4, "good": 24}
    # val and moved images never come from the kept test set; test keeps all unmoved test images
    moved = [e for e in m.entries if e.source_split == "test" and e.split != "test"]
    assert len(moved) == 15 and all(e.label == 1 for e in moved)
    assert all(e.source_split == "test" for e in m.subset("test"))


def test_unsupervised_protocol(bottle_like: Path) -> None:
    m = make_split(scan_mvtec(bottle_like), SplitConfig(defects_to_train=0, val_fraction=0.2))
    assert {e.defect_type for e in m.subset("train") + m.subset("val")} == {"good"}
    assert len(m.subset("val")) == 6 and len(m.subset("test")) == 83


def test_val_has_a_good_image_even_when_tiny(tiny_dataset: Path) -> None:
    m = make_split(scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=0, val_fraction=0.01))
    assert [e.defect_type for e in m.subset("val")] == ["good"]


def test_warns_when_val_gets_no_defect_image(bottle_like: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = scan_mvtec(bottle_like)
    with caplog.at_level("WARNING", logger="defectkit.datasets.split"):
        m = make_split(index, SplitConfig(defects_to_train=2, val_fraction=0.2))
    assert not any(e.label == 1 for e in m.subset("val"))
    assert "val holds no defect image" in caplog.text and "--val-fraction 0.26" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="defectkit.datasets.split"):
        m = make_split(index, SplitConfig(defects_to_train=2, val_fraction=0.26))  # the suggested fix
    assert sum(e.label == 1 for e in m.subset("val")) == len(m.defect_types)
    assert "val holds no defect image" not in caplog.text


def test_same_seed_byte_identical_other_seed_differs(bottle_like: Path, tmp_path: Path) -> None:
    idx = scan_mvtec(bottle_like)
    a = make_split(idx, SplitConfig(defects_to_train=5, seed=1)).save(tmp_path / "a.json")
    b = make_split(scan_mvtec(bottle_like), SplitConfig(defects_to_train=5, seed=1)).save(tmp_path / "b.json")
    c = make_split(idx, SplitConfig(defects_to_train=5, seed=2)).save(tmp_path / "c.json")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    raw = json.loads(a.read_text())
    assert raw["seed"] == 1 and raw["defects_to_train"] == 5 and raw["val_fraction"] == 0.2
    assert raw["dataset"] == str(bottle_like.resolve()) and len(raw["fingerprint"]) == 64


def test_round_trip_and_fingerprint_refusal(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "copy"
    shutil.copytree(tiny_dataset, data)
    m = make_split(scan_mvtec(data), SplitConfig(defects_to_train=1))
    path = m.save(tmp_path / "split.json")
    assert load_split(path) == m
    (data / "ground_truth/broken_small/002_mask.png").write_bytes(
        (data / "ground_truth/broken_small/003_mask.png").read_bytes())
    with pytest.raises(InputError, match=r"split\.json: fingerprint no longer matches the data"):
        load_split(path)
    assert load_split(path, verify=False).fingerprint == m.fingerprint


def test_bad_manifests(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="split manifest not found"):
        load_split(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="not a defectkit split manifest"):
        load_split(tmp_path / "x.json")


def test_too_many_defects_to_train(tiny_dataset: Path) -> None:
    with pytest.raises(InputError, match=r"cannot move 4 images to train, only 4"):
        make_split(scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=4))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="defects_to_train"):
        SplitConfig(defects_to_train=-1)
    with pytest.raises(ValueError, match="val_fraction"):
        SplitConfig(val_fraction=1.0)


def test_manifest_dataset_items(tiny_split: Path) -> None:
    import torch

    from defectkit.datasets.torch_data import ManifestDataset

    m = load_split(tiny_split)
    ds = ManifestDataset(m, "test", image_size=32, with_mask=True, classes=m.defect_types)
    assert len(ds) == len(m.subset("test"))
    labels = ds.labels()
    for i in range(len(ds)):
        item = ds[i]
        e = m.subset("test")[i]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
        assert int(item["label"]) == labels[i] == e.label
        assert int(item["target"]) == (0 if e.label == 0 else 1 + m.defect_types.index(e.defect_type))
        assert item["mask"].shape == (1, 32, 32)
        assert (float(item["mask"].sum()) > 0) == (e.label == 1)
