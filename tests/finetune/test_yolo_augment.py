"""RandomTranspose: exact label geometry, and that it reaches ultralytics' training transforms."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("ultralytics")


def _labels(img: np.ndarray, boxes_xyxy: np.ndarray, segments: np.ndarray):
    from ultralytics.utils.instance import Instances

    inst = Instances(
        boxes_xyxy.astype(np.float32), segments.astype(np.float32), bbox_format="xyxy", normalized=False
    )
    return {"img": img, "instances": inst, "cls": np.zeros((len(boxes_xyxy), 1), np.float32)}


def test_transpose_moves_image_boxes_and_segments_together():
    from defectkit.finetune.yolo_world.augment import RandomTranspose

    img = np.zeros((8, 8, 3), np.uint8)
    img[1:3, 4:7] = 255  # object: rows 1-2, columns 4-6 -> XYXY (4, 1, 7, 3)
    seg = np.array([[[4, 1], [7, 1], [7, 3], [4, 3]]], np.float32)
    out = RandomTranspose(1.0)(_labels(img.copy(), np.array([[4, 1, 7, 3]]), seg))
    assert np.array_equal(out["img"], img.transpose(1, 0, 2))
    assert out["img"].flags["C_CONTIGUOUS"]
    inst = out["instances"]
    inst.convert_bbox(format="xyxy")
    assert inst.bboxes.tolist() == [[1, 4, 3, 7]]  # columns 4-6 became rows 4-6
    assert inst.segments.tolist() == [[[1, 4], [1, 7], [3, 7], [3, 4]]]
    ys, xs = np.nonzero(out["img"][..., 0])
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (1, 4, 3, 7)  # pixels agree with the box


def test_transpose_probability_and_non_square_images():
    from defectkit.finetune.yolo_world.augment import RandomTranspose

    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    box, seg = np.array([[0, 0, 2, 4]]), np.zeros((1, 4, 2))
    assert RandomTranspose(0.0)(_labels(img.copy(), box, seg))["img"].tolist() == img.tolist()
    wide = np.zeros((4, 8, 3), np.uint8)
    assert RandomTranspose(1.0)(_labels(wide, box, seg))["img"].shape == (4, 8, 3)  # left as it is
    random.seed(0)
    swapped = sum(
        not np.array_equal(RandomTranspose(0.5)(_labels(img.copy(), box, seg))["img"], img)
        for _ in range(400)
    )
    assert 160 < swapped < 240
    with pytest.raises(ValueError, match="transpose probability"):
        RandomTranspose(1.5)


def test_trainer_dataset_gets_transpose_and_keeps_it_after_close_mosaic(tmp_path, tiny_split):
    from defectkit.converters.convert import ConvertConfig, convert_dataset
    from defectkit.datasets.split import load_split
    from defectkit.finetune.yolo_world.env import import_ultralytics

    import_ultralytics()
    from defectkit.finetune.yolo_world.augment import RandomTranspose
    from defectkit.finetune.yolo_world.trainer import OfflineDetectionTrainer

    manifest = load_split(tiny_split)
    convert_dataset(
        ConvertConfig(
            dataset=str(manifest.dataset),
            split=str(tiny_split),
            output=str(tmp_path / "labels"),
            formats=("yolo",),
        )
    )
    args = {
        "model": "yolov8n.yaml",
        "data": str(tmp_path / "labels" / "yolo" / "data.yaml"),
        "imgsz": 64,
        "epochs": 1,
        "device": "cpu",
        "workers": 0,
        "project": str(tmp_path),
        "name": "run",
        "plots": False,
    }
    trainer = OfflineDetectionTrainer(overrides=args, transpose=0.5)
    assert trainer.transpose == 0.5  # set by the callback that DDP workers also receive
    trainer.data = trainer.get_dataset()
    trainer.model = trainer.get_model("yolov8n.yaml", verbose=False)  # build_dataset reads its stride
    train = trainer.build_dataset(trainer.data["train"], mode="train", batch=2)
    kinds = [type(t) for t in train.transforms.transforms]
    assert kinds.count(RandomTranspose) == 1 and kinds[-1] is not RandomTranspose  # before Format
    train.close_mosaic(trainer.args)
    assert [type(t) for t in train.transforms.transforms].count(RandomTranspose) == 1
    val = trainer.build_dataset(trainer.data["val"], mode="val", batch=2)
    assert RandomTranspose not in [type(t) for t in val.transforms.transforms]
    plain = OfflineDetectionTrainer(overrides={**args, "name": "plain"})
    plain.data = plain.get_dataset()
    plain.model = plain.get_model("yolov8n.yaml", verbose=False)
    assert RandomTranspose not in [
        type(t) for t in plain.build_dataset(plain.data["train"], mode="train", batch=2).transforms.transforms
    ]
