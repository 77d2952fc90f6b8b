"""``defectkit finetune sam`` and ``defectkit predict sam`` end to end on tiny synthetic data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sam_helpers import convert_coco

from defectkit.datasets.split import load_split
from defectkit.finetune.sam.model import build_sam_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


@pytest.fixture(scope="module")
def labels(tiny_dataset, tiny_split, tmp_path_factory):
    out = tmp_path_factory.mktemp("sam_cli_labels")
    convert_coco(tiny_dataset, tiny_split, out)
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny SAM state dict (untrained: prediction tests check formats, not quality)."""
    from defectkit.finetune.sam.model import build_sam_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam_w") / "best.pt"
    torch.save(build_sam_model("tiny").state_dict(), path)
    return path


def _decode(det: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = dict(det["segmentation"])
    rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def test_finetune_sam_cli_writes_run_folder(run_cli, labels, tmp_path):
    run = tmp_path / "runs" / "sam"
    code, out, err = run_cli(
        "finetune",
        "sam",
        "--coco",
        labels / "coco" / "train.json",
        "--val-coco",
        labels / "coco" / "train.json",
        "--model-type",
        "tiny",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        "--box-jitter",
        "0.1",
        "-o",
        run,
    )
    assert code == 0, err
    assert f"wrote {run}" in out and "encoder runs 3" in out
    assert {"config.json", "metrics.csv", "best.pt", "last.pt", "train_state.pt"} <= {
        p.name for p in run.iterdir()
    }
    assert len(list((tmp_path / "runs" / ".sam_cache").rglob("*.npy"))) == 3  # default cache next to the run
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "val_iou/broken_large" in rows[0]
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["model_type"] == "tiny" and config["box_jitter"] == 0.1 and config["train"] == "decoder"
    code, _, err = run_cli(
        "finetune",
        "sam",
        "--coco",
        labels / "coco" / "train.json",
        "--epochs",
        "3",
        "--resume",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        "-o",
        run,
    )
    assert code == 0, err


def test_finetune_sam_cli_train_all_demo_flags(run_cli, labels, tmp_path):
    # the demo's flags (docs/guide/sam.md): whole model trained, flips/transposes on, no cache written
    run = tmp_path / "runs" / "sam_all"
    argv = ["--train", "all", "--epochs", "2", "--batch-size", "1", "--lr", "1e-3", "-o", run]
    code, out, err = run_cli("finetune", "sam", "--coco", labels / "coco" / "train.json", *argv)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["train"] == "all" and config["augment"] == "auto"
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert not (tmp_path / "runs" / ".sam_cache").exists()
    torch.manual_seed(config["seed"])  # the init train_sam starts from
    before = {k: v for k, v in build_sam_model("tiny").state_dict().items() if k.startswith("image_encoder")}
    after = torch.load(run / "last.pt")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the encoder learned


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--box-jitter", "1.5"], "--box-jitter"),
        (["--epochs", "-1"], "--epochs"),
        (["--steps", "0"], "--steps"),
        (["--checkpoint", "missing.pth"], "missing.pth: SAM checkpoint not found"),
        (["--resume"], "train_state.pt not found"),
    ],
)
def test_finetune_sam_cli_bad_input(run_cli, labels, tmp_path, argv, message):
    code, _, err = run_cli(
        "finetune", "sam", "--coco", labels / "coco" / "train.json", "-o", tmp_path / "r", *argv
    )
    assert code == 2 and message in err


def test_finetune_sam_cli_says_how_to_put_defects_in_train(run_cli, good_only_labels, tmp_path):
    coco = good_only_labels / "coco" / "train.json"
    code, _, err = run_cli("finetune", "sam", "--coco", coco, "-o", tmp_path / "r")
    assert code == 2 and f"{coco}: no annotated images to train on" in err and "--defects-to-train K" in err
    assert not (tmp_path / "r").exists()


def test_predict_sam_gt_boxes(run_cli, labels, weights, tiny_split, tmp_path):
    out = tmp_path / "pred"
    code, stdout, err = run_cli(
        "predict",
        "sam",
        "--weights",
        weights,
        "--model-type",
        "tiny",
        "--split",
        tiny_split,
        "--labels",
        labels,
        "--boxes",
        "gt",
        "-o",
        out,
    )
    assert code == 0, err
    manifest = load_split(tiny_split)
    entries = {i + 1: e for i, e in enumerate(manifest.entries)}
    dets = json.loads((out / "detections.json").read_text())
    gt = [json.loads((labels / "coco" / f"{s}.json").read_text()) for s in ("val", "test")]
    assert 0 < len(dets) <= sum(len(g["annotations"]) for g in gt)
    for d in dets:
        e = entries[d["image_id"]]
        assert e.split in ("val", "test") and e.label == 1
        assert _decode(d).shape == (e.height, e.width) and _decode(d).any()
        assert 0 <= d["score"] <= 1 and len(d["bbox"]) == 4
    with open(out / "image_scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "split", "defect_type", "label", "score"]
    assert [r["image"] for r in rows] == sorted(
        e.name for e in manifest.entries if e.split in ("val", "test")
    )
    assert all(float(r["score"]) == 0 for r in rows if r["label"] == "0")  # no GT boxes on good images
    meta = json.loads((out / "prediction_meta.json").read_text())
    assert (
        meta["kind"] == "segmenter" and meta["splits"] == ["val", "test"] and meta["weights"] == str(weights)
    )
    assert meta["note"].startswith("image level: an oracle")  # the report says so beside accuracy etc.


def test_predict_sam_chained_from_detector_boxes(run_cli, labels, weights, tiny_split, tmp_path):
    manifest = load_split(tiny_split)
    ids = {e.name: i + 1 for i, e in enumerate(manifest.entries)}
    test = [e for e in manifest.entries if e.split == "test"]
    good = next(e for e in test if e.label == 0)
    defect = next(e for e in test if e.label == 1)
    boxes = [
        {"image_id": ids[defect.name], "category_id": 2, "bbox": [10, 12, 20, 15], "score": 0.8},
        {"image_id": ids[good.name], "category_id": 1, "bbox": [0, 0, 30, 30], "score": 0.5},
        {"image_id": ids[good.name], "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.05},
    ]
    det_path = tmp_path / "yolo" / "detections.json"
    det_path.parent.mkdir()
    det_path.write_text(json.dumps(boxes))
    out = tmp_path / "pred"
    code, _, err = run_cli(
        "predict",
        "sam",
        "--weights",
        weights,
        "--split",
        tiny_split,
        "--labels",
        labels,
        "--boxes",
        det_path,
        "--splits",
        "test",
        "--min-box-score",
        "0.1",
        "-o",
        out,
    )
    assert code == 0, err
    dets = json.loads((out / "detections.json").read_text())
    assert {d["image_id"] for d in dets} <= {ids[defect.name], ids[good.name]}
    for d in dets:
        src = next(b for b in boxes if b["image_id"] == d["image_id"] and b["score"] >= 0.1)
        assert d["category_id"] == src["category_id"] and d["score"] <= src["score"]
        assert _decode(d).shape == (64, 64)
    with open(out / "image_scores.csv", newline="") as fh:
        scores = {r["image"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert len(scores) == len(test)
    top = {d["image_id"]: max(x["score"] for x in dets if x["image_id"] == d["image_id"]) for d in dets}
    for name, score in scores.items():
        assert score == pytest.approx(top.get(ids[name], 0.0), abs=1e-6)


def test_predict_sam_rejects_wrong_model_type(run_cli, labels, weights, tiny_split, tmp_path):
    code, _, err = run_cli(
        "predict",
        "sam",
        "--weights",
        weights,
        "--model-type",
        "vit_b",
        "--split",
        tiny_split,
        "--labels",
        labels,
        "-o",
        tmp_path / "p",
    )
    assert code == 2 and "does not match --model-type vit_b" in err and "missing keys" in err
    assert not (tmp_path / "p").exists()


def test_predict_masks_api_returns_image_sized_masks(weights):
    from defectkit.finetune.sam.model import build_sam_model
    from defectkit.finetune.sam.predict import predict_masks

    sam = build_sam_model("tiny", weights)
    image = np.zeros((48, 80, 3), np.uint8)
    masks, iou = predict_masks(sam, image, np.array([[4, 4, 30, 20], [40, 10, 79, 47]], np.float32))
    assert masks.shape == (2, 48, 80) and masks.dtype == bool and iou.shape == (2,)
    empty, iou0 = predict_masks(sam, image, np.zeros((0, 4)))
    assert empty.shape == (0, 48, 80) and iou0.shape == (0,)
