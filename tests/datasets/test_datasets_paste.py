"""Copy-paste of the split's real defect instances: pure functions, the derived dataset and split,
no leakage from val/test, determinism, and the downstream commands on the result."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from defectkit.datasets.io import read_image, read_mask
from defectkit.datasets.paste import (
    PasteConfig,
    blend,
    mask_components,
    move,
    paste_instances,
    paste_split,
)
from defectkit.datasets.split import load_split
from defectkit.errors import InputError


def test_mask_components_sorted_and_filtered() -> None:
    mask = np.zeros((20, 20), bool)
    mask[1:3, 1:3] = True  # 4 px
    mask[10:15, 10:16] = True  # 30 px
    mask[0, 19] = True  # 1 px
    comps = mask_components(mask, min_area=2)
    assert [int(c.sum()) for c in comps] == [30, 4]
    assert comps[0][12, 12] and not comps[0][1, 1]


def test_move_same_dihedral_and_rotate() -> None:
    rng = random.Random(0)
    img = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    mask = np.zeros((16, 16), bool)
    mask[2:5, 3:9] = True
    same_img, same_mask = move(img, mask, "same", rng)
    assert same_img is img and same_mask is mask
    for _ in range(8):  # exact: the same pixels, moved
        d_img, d_mask = move(img, mask, "dihedral", rng)
        assert d_mask.sum() == mask.sum()
        assert sorted(d_img[d_mask].tolist()) == sorted(img[mask].tolist())
    # rotation is about the image centre: the distance of the blob's centre from it is kept
    big = np.zeros((101, 101), bool)
    big[10:20, 45:56] = True
    r_img, r_mask = move(np.zeros((101, 101, 3), np.uint8), big, "rotate", random.Random(3))
    ys, xs = np.nonzero(r_mask)
    assert np.hypot(ys.mean() - 50, xs.mean() - 50) == pytest.approx(np.hypot(14.5 - 50, 0), abs=1.0)
    assert abs(int(r_mask.sum()) - 110) <= 12


def test_blend_hard_and_feathered() -> None:
    target = np.full((32, 32, 3), 10, np.uint8)
    source = np.full((32, 32, 3), 200, np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[10:20, 10:20] = True
    hard = blend(target, source, mask, 0.0)
    assert (hard[mask] == 200).all() and (hard[~mask] == 10).all()
    soft = blend(target, source, mask, 1.5)
    assert (soft[mask] == 200).all()  # inside the mask: the source, exactly
    assert (soft[:4] == 10).all() and (soft[:, 26:] == 10).all()  # far away: the target, exactly
    assert 10 < soft[9, 15, 0] < 200  # the edge is soft


def test_paste_instances_same_place_copies_instance_pixels() -> None:
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    src = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    inst = np.zeros((40, 40), bool)
    inst[5:12, 20:30] = True
    out, union = paste_instances(bg, [(src, inst)], "same", 0.0, random.Random(0))
    assert (union == inst).all()
    assert (out[inst] == src[inst]).all() and (out[~inst] == bg[~inst]).all()


@pytest.fixture(scope="module")
def pasted(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("pasted")
    cfg = PasteConfig(split=str(tiny_split), output=str(out), per_type=3, placement="rotate", seed=0)
    return cfg, paste_split(cfg)


def test_paste_split_keeps_val_and_test_and_adds_train(tiny_split: Path, pasted) -> None:
    cfg, result = pasted
    original = load_split(tiny_split)
    derived = load_split(result.split)  # verifies the fingerprint of the derived folder's files
    assert derived.dataset == result.dataset == Path(cfg.output).resolve() / original.category
    for split in ("val", "test"):
        assert derived.subset(split) == original.subset(split)
    new = [e for e in derived.subset("train") if e not in original.subset("train")]
    assert result.pasted == {d: 3 for d in original.defect_types}
    assert len(new) == 9 and all(e.label == 1 and e.name.startswith("paste_") for e in new)
    for e in new:
        mask = read_mask(derived.dataset / e.mask).mask
        image = read_image(derived.dataset / e.image)
        assert mask.any() and image.shape == (e.height, e.width, 3)


def test_paste_uses_only_train_images(tiny_split: Path, pasted) -> None:
    cfg, _ = pasted
    original = load_split(tiny_split)
    train = {e.name: e for e in original.subset("train")}
    record = json.loads((Path(cfg.output) / "paste.json").read_text())
    assert record["config"]["per_type"] == 3 and len(record["pasted"]) == 9
    for p in record["pasted"]:
        assert train[p["background"]].label == 0
        assert all(train[name].label == 1 for name, _ in p["instances"])


def test_paste_is_deterministic(tiny_split: Path, pasted, tmp_path: Path) -> None:
    cfg, result = pasted
    again = paste_split(PasteConfig(split=str(tiny_split), output=str(tmp_path / "again"), per_type=3, seed=0))
    first = json.loads(result.split.read_text())
    second = json.loads(again.split.read_text())
    assert first["fingerprint"] == second["fingerprint"]  # same bytes in every listed file
    assert first["images"] == second["images"]


def test_convert_runs_on_the_pasted_split(pasted, tmp_path: Path) -> None:
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    _, result = pasted
    convert_dataset(ConvertConfig(dataset=str(result.dataset), split=str(result.split), output=str(tmp_path),
                                  formats=("coco",)))
    coco = json.loads((tmp_path / "coco" / "train.json").read_text())
    names = [Path(im["file_name"]).name for im in coco["images"]]
    assert sum(n.startswith("paste_") for n in names) == 9
    pasted_ids = {im["id"] for im in coco["images"] if Path(im["file_name"]).name.startswith("paste_")}
    assert {a["image_id"] for a in coco["annotations"]} >= pasted_ids  # every pasted image is labelled


def test_paste_refuses_a_split_without_train_defects(tiny_dataset: Path, tmp_path: Path, run_cli) -> None:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split

    split = make_split(scan_mvtec(tiny_dataset), SplitConfig(val_fraction=0.25)).save(tmp_path / "s.json")
    with pytest.raises(InputError, match="no defect instance to paste.*--defects-to-train"):
        paste_split(PasteConfig(split=str(split), output=str(tmp_path / "out")))
    code, _, err = run_cli("paste", split, "-o", tmp_path / "out2")
    assert code == 2 and "--defects-to-train" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_paste_cli_writes_the_derived_dataset(tiny_split: Path, tmp_path: Path, run_cli) -> None:
    code, out, _ = run_cli("paste", tiny_split, "-o", tmp_path / "p", "--per-type", "2", "--placement", "same")
    assert code == 0 and "wrote 6 pasted images" in out
    derived = load_split(tmp_path / "p" / "split.json")
    assert sum(e.name.startswith("paste_") for e in derived.entries) == 6


def test_paste_never_replaces_a_folder_it_did_not_write(tiny_split: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    busy = tmp_path / "runs"
    (busy / "other_run").mkdir(parents=True)
    (busy / "other_run" / "best.pt").write_bytes(b"keep me")
    with pytest.raises(InputError, match="not an earlier paste output"):
        paste_split(PasteConfig(split=str(tiny_split), output=str(busy), per_type=1))
    assert (busy / "other_run" / "best.pt").read_bytes() == b"keep me"
    for inside in (tiny_dataset, tiny_dataset.parent, tiny_dataset / "pasted"):
        with pytest.raises(InputError, match="outside the dataset folder"):
            paste_split(PasteConfig(split=str(tiny_split), output=str(inside), per_type=1))
    first = paste_split(PasteConfig(split=str(tiny_split), output=str(tmp_path / "p"), per_type=1))
    again = paste_split(PasteConfig(split=str(tiny_split), output=str(tmp_path / "p"), per_type=2))
    assert first.split == again.split and again.pasted == {d: 2 for d in again.pasted}  # a paste folder is re-written
