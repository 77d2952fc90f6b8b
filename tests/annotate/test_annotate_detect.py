"""`annotate auto --detector`: an untrained tiny YOLO-World checkpoint (text features inside, no CLIP)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

NAMES = ("broken large", "broken small", "contamination")


@pytest.fixture(scope="module")
def world_ckpt(tmp_path_factory) -> Path:
    """yolov8n-worldv2 built from its yaml with 3 classes and random unit text features, saved as
    ultralytics saves it (what `defectkit finetune yolo-world` leaves in RUN/weights/best.pt)."""
    import torch

    from defectkit.finetune.yolo_world.env import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLOWorld

    torch.manual_seed(0)
    model = YOLOWorld("yolov8n-worldv2.yaml")
    inner = model.model
    inner.txt_feats = torch.nn.functional.normalize(torch.randn(1, len(NAMES), 512), dim=-1)
    inner.model[-1].nc = len(NAMES)
    inner.names = dict(enumerate(NAMES))
    path = tmp_path_factory.mktemp("world") / "best.pt"
    model.save(str(path))
    return path


def test_load_detector_applies_text_embeddings_and_detects(world_ckpt, tmp_path):
    import torch

    from defectkit.annotate.detect import load_detector
    from defectkit.finetune.yolo_world.text_embeddings import TextEmbeddings, save_text_embeddings

    emb = torch.nn.functional.normalize(torch.randn(4, 512), dim=-1)
    save_text_embeddings(TextEmbeddings(names=("other", *NAMES), embeddings=emb), tmp_path / "emb.pt")
    det = load_detector(world_ckpt, tmp_path / "emb.pt", conf=0.0, max_det=5)
    assert det.names == NAMES
    assert torch.allclose(det.model.model.txt_feats[0], emb[1:])  # rows in the checkpoint's class order
    boxes = det.detect(np.full((64, 64, 3), 128, np.uint8))
    assert 0 < len(boxes) <= 5
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)
    assert all(1 <= b.category_id <= 3 and b.box[0] <= b.box[2] and b.box[1] <= b.box[3] for b in boxes)

    save_text_embeddings(TextEmbeddings(names=("broken large",), embeddings=emb[:1]), tmp_path / "few.pt")
    with pytest.raises(Exception, match="no embedding for"):
        load_detector(world_ckpt, tmp_path / "few.pt", conf=0.0)
    with pytest.raises(Exception, match="--detector weights file not found"):
        load_detector(tmp_path / "none.pt", None, conf=0.0)


def test_auto_with_detector(world_ckpt, tiny_dataset, tmp_path, monkeypatch, run_cli):
    from defectkit.annotate import auto as auto_mod
    from defectkit.converters.coco import load_coco

    def whole_box(image, boxes):
        out = np.zeros((len(boxes), *image.shape[:2]), bool)
        for k, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            out[k, y0:y1, x0:x1] = True
        return out, np.ones(len(boxes), np.float32)

    monkeypatch.setattr(auto_mod, "_segmenter", lambda cfg: whole_box)
    images = tmp_path / "unlabelled"
    images.mkdir()
    for name in ("000.png", "001.png"):
        shutil.copy(Path(tiny_dataset) / "test" / "contamination" / name, images / name)
    code, out, err = run_cli(
        "annotate",
        "auto",
        "--images",
        images,
        "--detector",
        world_ckpt,
        "--conf",
        "0",
        "--max-det",
        "2",
        "--min-area",
        "1",
        "--sam",
        "x.pt",
        "-o",
        tmp_path / "out",
    )
    assert code == 0, err
    coco = load_coco(tmp_path / "out" / "coco.json")
    assert [c["name"] for c in coco["categories"]] == list(NAMES)
    assert [i["file_name"] for i in coco["images"]] == ["000.png", "001.png"]
    boxes = json.loads((tmp_path / "out" / "boxes.json").read_text())
    assert len(boxes) == 4  # --max-det 2 per image
    assert len(coco["annotations"]) >= 1 and all("score" in a for a in coco["annotations"])
