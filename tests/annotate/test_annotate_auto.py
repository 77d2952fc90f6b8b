"""`defectkit annotate auto`: boxes -> SAM masks -> COCO + YOLO (read back by the converters) + gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectkit.annotate import auto as auto_mod
from defectkit.annotate.auto import (
    AutoConfig,
    BoxPrompt,
    Counts,
    clip_to_boxes,
    list_images,
    read_box_file,
    select_masks,
)


@pytest.fixture(scope="module")
def boxes_file(gt_coco, tmp_path_factory) -> Path:
    """Human-drawn boxes: the GT boxes of the test images (no masks), category ids 10/20/30, scores."""
    coco = json.loads(Path(gt_coco).read_text())
    cats = [{"id": c["id"] * 10, "name": c["name"]} for c in coco["categories"]]
    anns = [
        {
            "id": a["id"],
            "image_id": a["image_id"],
            "category_id": a["category_id"] * 10,
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in coco["annotations"]
    ]
    images = [
        {"id": i["id"], "file_name": i["file_name"], "width": i["width"], "height": i["height"]}
        for i in coco["images"]
    ]
    path = tmp_path_factory.mktemp("boxes") / "boxes.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _box_masks(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Stand-in segmenter: each box filled, except boxes starting at x=0 (-> empty mask)."""
    out = np.zeros((len(boxes), *image.shape[:2]), bool)
    for k, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
        if x0 > 0:
            out[k, y0:y1, x0:x1] = True
    return out, np.ones(len(boxes), np.float32)


def test_list_images_and_box_file(tiny_dataset, boxes_file, tmp_path):
    images = list_images(tiny_dataset)
    assert (
        images == sorted(images) and "test/broken_large/000.png" in images and "train/good/000.png" in images
    )
    assert not any(p.startswith("ground_truth/") for p in images), "MVTec mask folders are skipped"
    cats, prompts = read_box_file(boxes_file, images)
    assert [c["id"] for c in cats] == [1, 2, 3] and cats[0]["name"] == "broken_large"
    first = prompts["test/broken_large/000.png"]
    assert first and first[0].category_id == 1 and first[0].score == 0.9
    assert "train/good/000.png" not in prompts  # not listed in the box file: not labelled
    bad = tmp_path / "b.json"
    bad.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "nope.png", "width": 1, "height": 1}],
                "annotations": [],
                "categories": [],
            }
        )
    )
    with pytest.raises(Exception, match="'nope.png' .* is not in the --images folder"):
        read_box_file(bad, images)


def test_select_masks_drops_and_counts():
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 2:8, 2:8] = True  # 36 px: kept
    masks[1, 0:2, 0:2] = True  # 4 px: under min_area
    prompts = [
        BoxPrompt(1, (2, 2, 8, 8), 0.9),
        BoxPrompt(2, (0, 0, 2, 2), 0.8),
        BoxPrompt(1, (9, 9, 12, 12), 0.7),
    ]
    counts = Counts()
    kept = select_masks(prompts, masks, 10, counts)
    assert [p for p, _ in kept] == [prompts[0]]
    assert [(i.bbox_xyxy, i.area) for i in kept[0][1]] == [((2, 2, 8, 8), 36)]
    assert (counts.boxes, counts.kept, counts.dropped_small, counts.dropped_no_mask) == (3, 1, 1, 1)


def test_clip_to_boxes_keeps_the_grown_box_only():
    masks = np.ones((2, 40, 50), bool)
    boxes = np.array([[10, 10, 20, 30], [45, 35, 50, 40]], np.float32)
    out = clip_to_boxes(masks, boxes, 0.1)
    ys, xs = np.nonzero(out[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (9, 20, 8, 31)  # grown by 1 px and 2 px per side
    ys, xs = np.nonzero(out[1])
    assert (xs.max(), ys.max()) == (49, 39)  # clipped at the image border
    assert (clip_to_boxes(masks, boxes, 0.0)[0].sum()) == 10 * 20
    assert clip_to_boxes(np.zeros((0, 4, 4), bool), np.zeros((0, 4)), 0.1).shape == (0, 4, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of --boxes"),
        ({"boxes": "b", "detector": "d"}, "exactly one of --boxes"),
        ({"boxes": "b", "conf": 1.5}, "--conf must be in"),
        ({"boxes": "b", "min_area": -1}, "--min-area must be"),
        ({"boxes": "b", "box_margin": -0.5}, "--box-margin must be"),
        ({"boxes": "b", "formats": ("voc",)}, "--to must name"),
        ({"boxes": "b", "text_embeddings": "t"}, "--text-embeddings goes with --detector"),
    ],
)
def test_auto_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoConfig(images="i", output="o", sam="s", **kwargs)


def test_auto_with_given_boxes_writes_coco_yolo_and_gallery(
    tiny_dataset, boxes_file, tmp_path, monkeypatch, run_cli
):
    from defectkit.converters.coco import coco_masks, load_coco
    from defectkit.converters.yolo import yolo_segment_to_coco

    monkeypatch.setattr(auto_mod, "_segmenter", lambda cfg: _box_masks)
    boxes = json.loads(boxes_file.read_text())
    img0 = boxes["images"][0]
    # one box too small for --min-area, one the stand-in leaves empty, one under --conf
    boxes["annotations"] += [
        {"id": 900, "image_id": img0["id"], "category_id": 10, "bbox": [30, 30, 2, 2]},
        {"id": 901, "image_id": img0["id"], "category_id": 20, "bbox": [0, 10, 8, 8]},
        {"id": 902, "image_id": img0["id"], "category_id": 20, "bbox": [20, 10, 8, 8], "score": 0.1},
    ]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(boxes))
    out = tmp_path / "auto"
    code, stdout, err = run_cli(
        "annotate",
        "auto",
        "--images",
        tiny_dataset,
        "--boxes",
        path,
        "--sam",
        "unused.pt",
        "--model-type",
        "tiny",
        "-o",
        out,
    )
    assert code == 0, err
    n_given = len(boxes["annotations"]) - 1
    assert "dropped 1 boxes with no mask and 1 under --min-area" in stdout

    coco = load_coco(out / "coco.json")
    assert coco["info"]["dataset"] == str(Path(tiny_dataset).resolve())
    assert len(coco["images"]) == len(boxes["images"])
    assert len(coco["annotations"]) == n_given - 2
    assert all(a["score"] == 0.9 for a in coco["annotations"])
    masks = coco_masks(coco)
    by_file = {i["file_name"]: i["id"] for i in coco["images"]}
    for ann in boxes["annotations"][:-3]:
        x, y, w, h = ann["bbox"]
        img = next(i for i in boxes["images"] if i["id"] == ann["image_id"])
        got = [m for c, m in masks[by_file[img["file_name"]]] if c == ann["category_id"] // 10]
        assert any(m[y : y + h, x : x + w].all() and m.sum() >= w * h for m in got)

    yolo_total = 0
    for img in coco["images"]:
        text = (out / "yolo" / "labels" / f"{img['name']}.txt").read_text()
        back = yolo_segment_to_coco(text, width=img["width"], height=img["height"], image_id=img["id"])
        assert len(back) == sum(a["image_id"] == img["id"] for a in coco["annotations"])
        yolo_total += len(back)
        assert (out / "yolo" / "images" / f"{img['name']}.png").read_bytes() == (
            Path(tiny_dataset) / img["file_name"]
        ).read_bytes()
    assert yolo_total == len(coco["annotations"])
    yaml_text = (out / "yolo" / "data.yaml").read_text()
    assert "train: images" in yaml_text and '0: "broken large"' in yaml_text

    assert len(json.loads((out / "boxes.json").read_text())) == n_given
    page = (out / "gallery.html").read_text()
    assert page.count("<figure") == len(coco["images"])
    cfg = json.loads((out / "auto_config.json").read_text())
    assert cfg["summary"]["dropped_small"] == 1 and cfg["config"]["model_type"] == "tiny"


def test_auto_errors(tiny_dataset, boxes_file, tmp_path, run_cli):
    code, _, err = run_cli(
        "annotate",
        "auto",
        "--images",
        tmp_path / "none",
        "--boxes",
        boxes_file,
        "--sam",
        "x.pt",
        "-o",
        tmp_path / "o",
    )
    assert code == 2 and "none: --images folder not found" in err
    code, _, err = run_cli(
        "annotate",
        "auto",
        "--images",
        tiny_dataset,
        "--boxes",
        boxes_file,
        "--sam",
        tmp_path / "missing.pt",
        "--model-type",
        "tiny",
        "-o",
        tmp_path / "o",
    )
    assert code == 2 and "missing.pt: SAM checkpoint not found" in err
    assert not (tmp_path / "o" / "coco.json").exists()
    with pytest.raises(SystemExit):
        run_cli(
            "annotate",
            "auto",
            "--images",
            tiny_dataset,
            "--boxes",
            boxes_file,
            "--detector",
            "d.pt",
            "--sam",
            "x.pt",
            "-o",
            tmp_path / "o",
        )


def test_auto_with_tiny_sam_round_trips_through_converters(tiny_dataset, boxes_file, tmp_path, run_cli):
    """Real (untrained, seeded) tiny SAM: whatever masks it makes, the COCO and YOLO files hold the
    same instances, the converters' readers load them back, and every box is accounted for."""
    import torch

    from defectkit.converters.coco import coco_masks, load_coco
    from defectkit.converters.yolo import yolo_segment_to_coco
    from defectkit.finetune.sam.model import build_sam_model

    torch.manual_seed(0)
    ckpt = tmp_path / "sam_tiny.pt"
    torch.save(build_sam_model("tiny").state_dict(), ckpt)
    boxes = json.loads(boxes_file.read_text())  # 3 images keep the encoder time short on 2 cores
    keep = {i["id"] for i in boxes["images"][:3]}
    boxes["images"] = [i for i in boxes["images"] if i["id"] in keep]
    boxes["annotations"] = [a for a in boxes["annotations"] if a["image_id"] in keep]
    boxes_file = tmp_path / "boxes3.json"
    boxes_file.write_text(json.dumps(boxes))
    out = tmp_path / "auto"
    code, stdout, err = run_cli(
        "annotate",
        "auto",
        "--images",
        tiny_dataset,
        "--boxes",
        boxes_file,
        "--sam",
        ckpt,
        "--model-type",
        "tiny",
        "--min-area",
        "4",
        "--device",
        "cpu",
        "-o",
        out,
    )
    assert code == 0, err
    summary = json.loads((out / "auto_config.json").read_text())["summary"]
    n_boxes = len(json.loads(boxes_file.read_text())["annotations"])
    assert (
        summary["boxes"] == n_boxes == summary["kept"] + summary["dropped_no_mask"] + summary["dropped_small"]
    )
    coco = load_coco(out / "coco.json")
    assert len(coco["annotations"]) == summary["instances"] > 0
    masks = coco_masks(coco)
    for img in coco["images"]:
        assert all(m.shape == (img["height"], img["width"]) and m.sum() >= 4 for _, m in masks[img["id"]])
        text = (out / "yolo" / "labels" / f"{img['name']}.txt").read_text()
        back = yolo_segment_to_coco(text, width=img["width"], height=img["height"], image_id=img["id"])
        assert len(back) == len(masks[img["id"]])
        assert [a["category_id"] for a in back] == [c for c, _ in masks[img["id"]]]
    assert all(0.0 <= a["score"] <= 0.9 for a in coco["annotations"])
