"""``defectkit convert ROOT --categories``: the whole dataset as one COCO / YOLO dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from defectkit.converters import coco_masks, load_coco, parse_yolo_lines
from defectkit.datasets.io import read_mask
from defectkit.datasets.layouts import scan_dataset
from defectkit.datasets.split import SplitConfig, load_split
from defectkit.datasets.split_all import make_split_all
from defectkit.datasets.synth import SynthConfig, generate_synthetic

CFG = SynthConfig(n_train=4, n_test_good=2, n_test_per_defect=3, size=48, seed=2, categories=("tile", "bottle"))
CLASSES = ["bottle/broken_large", "bottle/broken_small", "bottle/contamination", "tile/crack", "tile/glue_strip"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("multi")
    return {lay: generate_synthetic(base / lay, SynthConfig(**{**CFG.__dict__, "layout": lay}))
            for lay in ("mvtec", "mvtec_ad2", "visa")}


@pytest.fixture(scope="module")
def labels(roots, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.cli import main

    out = tmp_path_factory.mktemp("labels_all") / "LABELS"
    argv = ["convert", str(roots["mvtec"]), "--categories", "all", "--defects-to-train", "2", "--to", "coco",
            "yolo", "--min-area", "1", "-o", str(out)]
    assert main(argv) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_classes_are_category_slash_defect_type(labels: Path) -> None:
    coco = load_coco(labels / "coco/test.json")
    assert [c["name"] for c in coco["categories"]] == CLASSES
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5]
    data = yaml.safe_load((labels / "yolo/data.yaml").read_text())
    assert data["nc"] == 5 and data["names"] == {0: "bottle broken large", 1: "bottle broken small",
                                                 2: "bottle contamination", 3: "tile crack", 4: "tile glue strip"}
    manifest = load_split(labels / "split.json")
    assert manifest.category == "bottle,tile" and list(manifest.defect_types) == CLASSES
    assert manifest.counts()["train"] == {**{c: 2 for c in CLASSES}, "good": 6}


def test_image_ids_sorted_by_category_then_name_and_stable(labels: Path, roots, tmp_path: Path) -> None:
    manifest = load_split(labels / "split.json")
    names = [e.name for e in manifest.entries]
    cats = [n.split("_", 1)[0] for n in names]
    assert cats == sorted(cats) and names[: cats.count("bottle")] == sorted(names[: cats.count("bottle")])
    ids = {}
    for split in ("train", "val", "test"):
        for img in load_coco(labels / f"coco/{split}.json")["images"]:
            ids[img["name"]] = img["id"]
            assert img["file_name"].startswith(img["name"].split("_", 1)[0] + "/")
    assert [ids[n] for n in names] == list(range(1, len(names) + 1))
    from defectkit.cli import main

    again = tmp_path / "again"
    assert main(["convert", str(roots["mvtec"]), "--categories", "bottle,tile", "--defects-to-train", "2",
                 "--to", "coco", "yolo", "--min-area", "1", "-o", str(again)]) == 0
    a, b = _files(labels), _files(again)
    assert a.keys() == b.keys()
    differ = [k for k in a if a[k] != b[k]]
    assert all(k.endswith(("data.yaml", "convert_config.json")) for k in differ)  # they hold the output path
    assert a["coco/train.json"] == b["coco/train.json"] and a["split.json"] == b["split.json"]


def test_one_mask_round_trips_through_coco(labels: Path, roots) -> None:
    coco = load_coco(labels / "coco/test.json")
    masks = coco_masks(coco)
    cat_name = {c["id"]: c["name"] for c in coco["categories"]}
    checked = 0
    for img in coco["images"]:
        if img["label"] != 1:
            continue
        category, stem = img["name"].split("_", 1)[0], img["name"].rsplit("_", 1)[1]  # bottle_test_..._001
        defect = img["defect_type"].split("/", 1)[1]
        truth = read_mask(roots["mvtec"] / category / "ground_truth" / defect / f"{stem}_mask.png").mask
        union = np.zeros_like(truth)
        for cid, m in masks[img["id"]]:
            assert cat_name[cid] == img["defect_type"]
            union |= m
        assert np.array_equal(union, truth), img["name"]
        checked += 1
    assert checked == 5 * 1  # one test image per defect type left (3 - 2 moved to train)


def test_yolo_class_indices_match_names(labels: Path) -> None:
    names = yaml.safe_load((labels / "yolo/data.yaml").read_text())["names"]
    seen = set()
    for split in ("train", "test"):
        for lab in sorted((labels / "yolo/labels" / split).glob("*.txt")):
            category = lab.stem.split("_", 1)[0]
            defect = lab.stem.split("_", 1)[1].split("_", 1)[1].rsplit("_", 1)[0]
            rows = parse_yolo_lines(lab.read_text())
            assert bool(rows) == (defect != "good"), lab.name
            for cls, _ in rows:
                assert names[cls] == f"{category} {defect.replace('_', ' ')}", lab.name
                seen.add(cls)
    assert seen == {0, 1, 2, 3, 4}


def test_names_file_json_and_yaml(roots, tmp_path: Path, run_cli) -> None:
    (tmp_path / "names.yaml").write_text('tile/crack: "hairline crack in a tile"\nbottle/contamination: dirt\n')
    (tmp_path / "names.json").write_text(json.dumps({"tile/glue_strip": "glue on a tile"}))
    for fname, idx, phrase in (("names.yaml", 3, "hairline crack in a tile"), ("names.json", 4, "glue on a tile")):
        out = tmp_path / fname.replace(".", "_")
        code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--to", "yolo",
                               "--names", tmp_path / fname, "-o", out)
        assert code == 0, err
        names = yaml.safe_load((out / "yolo/data.yaml").read_text())["names"]
        assert names[idx] == phrase and names[0] == "bottle broken large"
    (tmp_path / "bad.yaml").write_text("- just a list\n")
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--names", tmp_path / "bad.yaml",
                           "-o", tmp_path / "x")
    assert code == 2 and "bad.yaml: expected a mapping of class name" in err
    (tmp_path / "unknown.yaml").write_text("tile/scratch: a scratch\n")
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--names", tmp_path / "unknown.yaml",
                           "-o", tmp_path / "y")
    assert code == 2 and "--names: unknown class(es) ['tile/scratch']" in err


def test_given_whole_dataset_split_and_the_refusals(roots, labels: Path, tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("split", roots["mvtec"], "--categories", "all", "--defects-to-train", "2",
                           "-o", tmp_path / "all.json")
    assert code == 0, err
    assert (tmp_path / "all.json").read_bytes() == (labels / "split.json").read_bytes()
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--split", tmp_path / "all.json",
                           "--to", "coco", "--min-area", "1", "-o", tmp_path / "given")
    assert code == 0, err
    assert (tmp_path / "given/coco/test.json").read_bytes() == (labels / "coco/test.json").read_bytes()
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "tile", "--split", tmp_path / "all.json",
                           "-o", tmp_path / "z")
    assert code == 2 and "covers categories ['bottle', 'tile'], not --categories ['tile']" in err
    code, _, err = run_cli("split", roots["mvtec"], "--category", "tile", "-o", tmp_path / "tile.json")
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--split", tmp_path / "tile.json",
                           "-o", tmp_path / "z")
    assert code == 2 and "a one-category split (tile)" in err
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "all", "-o", roots["mvtec"] / "tile" / "out")
    assert code == 2 and "output folder must not be inside" in err
    code, _, err = run_cli("convert", roots["mvtec"], "--categories", "nope", "-o", tmp_path / "n")
    assert code == 2 and "--categories: no category ['nope']" in err
    code, _, err = run_cli("convert", roots["mvtec"], "-o", tmp_path / "n")
    assert code == 2 and "--split: required (or --categories" in err


def test_without_defects_in_train_a_warning_says_so(roots, tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli("convert", roots["mvtec"], "--categories", "all", "--to", "coco", "-o", tmp_path / "o")
    assert code == 0 and "train split holds no defect instance" in err
    cfg = json.loads((tmp_path / "o/convert_config.json").read_text())
    assert any("no defect instance" in w for w in cfg["report"]["warnings"])


@pytest.mark.parametrize(("layout", "classes"), [("mvtec_ad2", ["bottle/bad", "tile/bad"]),
                                                  ("visa", ["bottle/anomaly", "tile/anomaly"])])
def test_other_layouts_convert_the_same_masks(roots, tmp_path: Path, layout: str, classes: list[str]) -> None:
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    root = Path(shutil.copytree(roots[layout], tmp_path / layout))
    if layout == "visa":  # labels 0/2 instead of 0/1: still every non-zero pixel
        m = sorted((root / "tile/Data/Masks/Anomaly").glob("*.png"))[0]
        Image.fromarray(np.asarray(Image.open(m)) * 2).save(m)
    rep = convert_dataset(ConvertConfig(dataset=str(root), split="", output=str(tmp_path / "out"),
                                        formats=("coco",), categories=("all",), min_area=1, defects_to_train=1))
    coco = {s: load_coco(tmp_path / f"out/coco/{s}.json") for s in ("train", "val", "test")}
    assert [c["name"] for c in coco["test"]["categories"]] == classes
    area = sum(a["area"] for c in coco.values() for a in c["annotations"])
    truth = sum(int(r.mask_path is not None and read_mask(r.mask_path).mask.sum()) for r in scan_dataset(root).records)
    assert area == truth > 0 and rep.empty_masks == 0
    mv = make_split_all(scan_dataset(roots["mvtec"]), SplitConfig(defects_to_train=1))
    assert sum(len(c["images"]) for c in coco.values()) == len(mv.entries)


def test_a_category_manifest_given_with_the_root_names_the_folder_it_was_made_for(roots, tmp_path: Path,
                                                                                   run_cli) -> None:
    """`split ROOT --category tile` then `convert ROOT --split`: the error says which folder to give."""
    root = roots["visa"]
    code, _, err = run_cli("split", root, "--category", "tile", "-o", tmp_path / "tile.json")
    assert code == 0, err
    code, out, err = run_cli("convert", root, "--split", tmp_path / "tile.json", "-o", tmp_path / "z")
    assert code == 2 and out == "" and "Traceback" not in err
    assert (f"tile.json: lists Data/Images/Anomaly/000.JPG, which is not in {root.resolve()} (the manifest "
            f"was made for {(root / 'tile').resolve()}: give that folder as DATASET") in err
    code, _, err = run_cli("convert", root / "tile", "--split", tmp_path / "tile.json", "--to", "coco",
                           "-o", tmp_path / "ok")
    assert code == 0, err
