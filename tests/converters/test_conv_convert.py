"""`defectkit convert` end to end on the tiny synthetic dataset: layout, consumers, determinism."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from defectkit.converters import coco_masks, load_coco, parse_voc_boxes, parse_yolo_lines
from defectkit.datasets.io import read_mask
from defectkit.datasets.split import load_split


@pytest.fixture(scope="module")
def labels(tiny_dataset: Path, tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.cli import main

    out = tmp_path_factory.mktemp("labels") / "LABELS"
    assert (
        main(
            [
                "convert",
                str(tiny_dataset),
                "--split",
                str(tiny_split),
                "--to",
                "coco",
                "yolo",
                "voc",
                "-o",
                str(out),
                "--check",
                "--min-area",
                "1",
            ]
        )
        == 0
    )
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_coco_contract(labels: Path, tiny_split: Path, tiny_dataset: Path) -> None:
    manifest = load_split(tiny_split)
    ids = {e.name: i for i, e in enumerate(manifest.entries, start=1)}
    for split in ("train", "val", "test"):
        coco = load_coco(labels / "coco" / f"{split}.json")
        assert coco["info"]["dataset"] == str(tiny_dataset.resolve())
        assert [c["name"] for c in coco["categories"]] == list(manifest.defect_types)
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(manifest.defect_types) + 1))
        assert {c["supercategory"] for c in coco["categories"]} == {"defect"}
        entries = manifest.subset(split)
        assert [im["name"] for im in coco["images"]] == [e.name for e in entries]  # good images too
        for im, e in zip(coco["images"], entries, strict=True):
            assert im["id"] == ids[e.name] and im["file_name"] == e.image
            assert (im["defect_type"], im["label"], im["split"], im["width"]) == (
                e.defect_type,
                e.label,
                split,
                e.width,
            )
        # masks come back exactly from the COCO file (RLE for holes, polygons otherwise)
        back = coco_masks(coco)
        for e in entries:
            truth = read_mask(manifest.mask_path(e)).mask if e.mask else np.zeros((e.height, e.width), bool)
            got = np.logical_or.reduce([m for _, m in back[ids[e.name]]] + [np.zeros_like(truth)])
            assert (got ^ truth).sum() <= 0.02 * max(truth.sum(), 1)
            assert all(c == manifest.defect_types.index(e.defect_type) + 1 for c, _ in back[ids[e.name]])
    assert (labels / "convert_config.json").is_file()
    check = json.loads((labels / "check.json").read_text())
    assert check["overall"]["coco"]["mean_iou"] >= 0.999 and check["overall"]["yolo"]["min_iou"] >= 0.9


def test_yolo_folder_contract(labels: Path, tiny_split: Path) -> None:
    manifest = load_split(tiny_split)
    data = yaml.safe_load((labels / "yolo" / "data.yaml").read_text())
    assert Path(data["path"]).is_absolute() and data["path"] == str(labels.resolve() / "yolo")
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert data["names"] == {i: t.replace("_", " ") for i, t in enumerate(manifest.defect_types)}
    for e in manifest.entries:
        img = labels / "yolo" / "images" / e.split / f"{e.name}.png"
        assert img.read_bytes() == manifest.image_path(e).read_bytes()
        rows = parse_yolo_lines((labels / "yolo" / "labels" / e.split / f"{e.name}.txt").read_text())
        assert (len(rows) > 0) == bool(e.label)  # empty txt for good images
        if e.label:
            assert {c for c, _ in rows} == {manifest.defect_types.index(e.defect_type)}
        voc = parse_voc_boxes((labels / "voc" / "Annotations" / f"{e.name}.xml").read_text())
        assert {n for n, _ in voc} <= {e.defect_type}


def _coco_eval(gt_path: Path, iou_type: str) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        res = []
        for ann in gt.dataset["annotations"]:
            rle = gt.annToRLE(ann)
            rle["counts"] = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
            res.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": ann["category_id"],
                    "bbox": ann["bbox"],
                    "segmentation": rle,
                    "score": 1.0,
                }
            )
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cocoeval_of_ground_truth_against_itself_is_perfect(labels: Path, iou_type: str) -> None:
    assert _coco_eval(labels / "coco" / "test.json", iou_type) == pytest.approx(1.0)


@pytest.mark.parametrize(("split", "task"), [("train", "segment"), ("val", "detect"), ("test", "segment")])
def test_ultralytics_builds_its_dataset_with_no_corrupt_or_missing_labels(
    labels: Path, split: str, task: str
) -> None:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import load_dataset_cache_file

    data = yaml.safe_load((labels / "yolo" / "data.yaml").read_text())
    coco = load_coco(labels / "coco" / f"{split}.json")
    ds = YOLODataset(
        img_path=str(labels / "yolo" / "images" / split),
        data={**data, "channels": 3},
        task=task,
        imgsz=64,
        augment=False,
    )
    nf, nm, ne, nc, n = load_dataset_cache_file(labels / "yolo" / "labels" / f"{split}.cache")["results"]
    assert (nm, nc) == (0, 0) and nf == n == len(coco["images"])
    assert ne == sum(im["label"] == 0 for im in coco["images"])
    assert sum(len(lb["cls"]) for lb in ds.labels) == len(coco["annotations"])
    # the boxes ultralytics derives from our polygons are the COCO boxes (normalised XYWH centre)
    want = sorted(
        tuple(np.round([(x + w / 2) / 64, (y + h / 2) / 64, w / 64, h / 64], 4))
        for x, y, w, h in (a["bbox"] for a in coco["annotations"])
    )
    got = sorted(tuple(np.round(b, 4)) for lb in ds.labels for b in lb["bboxes"])
    assert np.allclose(got, want, atol=1e-3) if want else got == []


def test_pycocotools_loads_every_coco_file(labels: Path) -> None:
    from pycocotools.coco import COCO

    for split in ("train", "val", "test"):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(labels / "coco" / f"{split}.json"))
        for ann in coco.dataset["annotations"]:
            assert coco.annToMask(ann).sum() == ann["area"]  # area = mask pixel count, exactly


def test_second_run_is_byte_identical_and_leaves_no_temp_files(
    labels: Path, tiny_dataset: Path, tiny_split: Path, tmp_path: Path, run_cli
) -> None:
    out = tmp_path / "again"
    code, stdout, _ = run_cli(
        "convert", tiny_dataset, "--split", tiny_split, "-o", out, "--check", "--min-area", "1"
    )
    assert code == 0 and "fidelity all: coco mean IoU 1.00000, min 1.00000" in stdout
    assert "fidelity broken_large: coco" in stdout
    first = _files(out)
    assert not [k for k in first if k.endswith(".tmp") or "/." in k]
    code, _, _ = run_cli(
        "convert",
        tiny_dataset,
        "--split",
        tiny_split,
        "-o",
        out,
        "--check",
        "--min-area",
        "1",
        "--workers",
        "2",
    )
    assert code == 0 and _files(out) == first
    reference = {k: v for k, v in _files(labels).items() if not k.endswith(".cache")}
    ours = {
        k: v for k, v in first.items() if k not in ("yolo/data.yaml", "convert_config.json", "check.json")
    }
    assert ours.keys() <= reference.keys()
    assert all(reference[k] == v for k, v in ours.items() if not k.startswith("yolo/data"))


def test_options_single_class_names_link_rle_detect(
    tiny_dataset: Path, tiny_split: Path, tmp_path: Path, run_cli
) -> None:
    out = tmp_path / "L"
    code, _, err = run_cli(
        "convert",
        tiny_dataset,
        "--split",
        tiny_split,
        "--to",
        "coco",
        "yolo",
        "-o",
        out,
        "--single-class",
        "--names",
        'defect="glass defect"',
        "--link",
        "--segm",
        "rle",
        "--yolo-task",
        "detect",
    )
    assert code == 0, err
    coco = load_coco(out / "coco" / "test.json")
    assert coco["categories"] == [{"id": 1, "name": "defect", "supercategory": "defect"}]
    assert all(isinstance(a["segmentation"], dict) and a["category_id"] == 1 for a in coco["annotations"])
    assert yaml.safe_load((out / "yolo" / "data.yaml").read_text())["names"] == {0: "glass defect"}
    img = next((out / "yolo" / "images" / "test").iterdir())
    assert img.is_symlink() and img.resolve().is_file()
    rows = [r for p in (out / "yolo" / "labels" / "test").iterdir() for r in parse_yolo_lines(p.read_text())]
    assert rows and all(len(v) == 4 and c == 0 for c, v in rows)
    assert not (out / "voc").exists()


def test_changed_split_removes_stale_yolo_files_and_per_image_mode(
    tiny_dataset: Path, tiny_split: Path, tmp_path: Path, run_cli
) -> None:
    out = tmp_path / "L"
    stale = out / "yolo" / "labels" / "train" / "old_image.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("0 0.5 0.5 0.1 0.1\n")
    assert (
        run_cli(
            "convert", tiny_dataset, "--split", tiny_split, "--to", "yolo", "coco", "-o", out, "--per-image"
        )[0]
        == 0
    )
    assert not stale.exists()
    coco = load_coco(out / "coco" / "test.json")
    per_image = {}
    for a in coco["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert set(per_image.values()) == {1}
    assert len(per_image) == sum(im["label"] for im in coco["images"])
