"""Pure parts of the YOLO-World area: COCO results, image scores, --set parsing, configs, id checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectkit.errors import InputError
from defectkit.finetune.yolo_world.predict import (
    YoloPredictConfig,
    boxes_to_coco_results,
    global_image_ids,
    image_score,
    image_scores_csv,
)
from defectkit.finetune.yolo_world.text_embeddings import EmbedTextConfig, TextEmbeddings, split_synonyms
from defectkit.finetune.yolo_world.train import YoloFinetuneConfig, is_world_model, parse_set_overrides


def test_boxes_to_coco_results_xywh_category_plus_one_sorted_by_score():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0], [0.5, 1.25, 4.5, 2.25]])
    out = boxes_to_coco_results(7, xyxy, np.array([0, 2]), np.array([0.2, 0.9]))
    assert out == [
        {"image_id": 7, "category_id": 3, "bbox": [0.5, 1.25, 4.0, 1.0], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [10.0, 20.0, 20.0, 40.0], "score": 0.2},
    ]
    assert boxes_to_coco_results(1, np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)) == []


@pytest.mark.parametrize(("scores", "expected"), [([], 0.0), ([0.1], 0.1), ([0.3, 0.8, 0.5], 0.8)])
def test_image_score_is_max_box_score_or_zero(scores, expected):
    assert image_score(scores) == pytest.approx(expected)


def test_image_scores_csv_header_and_sorted_rows():
    rows = [
        {"image": "test_good_001", "split": "test", "defect_type": "good", "label": 0, "score": 0.0},
        {
            "image": "test_broken_large_000",
            "split": "test",
            "defect_type": "broken_large",
            "label": 1,
            "score": 0.75,
        },
    ]
    assert image_scores_csv(rows).splitlines() == [
        "image,split,defect_type,label,score",
        "test_broken_large_000,test,broken_large,1,0.750000",
        "test_good_001,test,good,0,0.000000",
    ]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["lr0=0.002", "mosaic=0"], {"lr0": 0.002, "mosaic": 0}),
        (["plots=False", "optimizer=SGD"], {"plots": False, "optimizer": "SGD"}),
        (["freeze=[0, 1]", "cache=null"], {"freeze": [0, 1], "cache": None}),
    ],
)
def test_parse_set_overrides(items, expected):
    assert parse_set_overrides(items) == expected


@pytest.mark.parametrize(
    ("item", "msg"), [("lr0", "key=value"), ("=3", "key=value"), ("project=x", "project")]
)
def test_parse_set_overrides_rejects(item, msg):
    with pytest.raises(ValueError, match=msg):
        parse_set_overrides([item])


@pytest.mark.parametrize(
    ("model", "world"),
    [
        ("yolov8s-worldv2.yaml", True),
        ("w/yolov8s-world.pt", True),
        ("yolov8n.yaml", False),
        ("yolo11s.pt", False),
    ],
)
def test_is_world_model(model, world):
    assert is_world_model(model) is world


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"model": "yolov8n-worldv2.yaml"}, "--text-embeddings"),
        ({"model": "yolov8n.yaml", "text_embeddings": Path("e.pt")}, "closed-set"),
        ({"model": "model.onnx"}, ".pt weights file or a .yaml"),
        ({"model": "yolov8n.yaml", "epochs": -1}, "--steps/--epochs"),
        ({"model": "yolov8n.yaml", "steps": 0}, "--steps/--epochs"),
        ({"model": "yolov8n.yaml", "overrides": {"data": "x"}}, "--set data"),
    ],
)
def test_finetune_config_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        YoloFinetuneConfig(data=Path("d.yaml"), output=Path("run"), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [({"conf": 1.5}, "--conf"), ({"splits": ("dev",)}, "--splits"), ({"imgsz": 16}, "--imgsz")],
)
def test_predict_config_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        YoloPredictConfig(
            weights=Path("w.pt"), split=Path("s.json"), labels=Path("l"), output=Path("o"), **kwargs
        )


def test_split_synonyms_and_embed_config():
    assert split_synonyms(["broken glass/cracked glass", "chip", " chip "]) == (
        "broken glass",
        "cracked glass",
        "chip",
    )
    with pytest.raises(ValueError, match="duplicate"):
        EmbedTextConfig(names=("a", "a "), output=Path("e.pt"))


def test_text_embeddings_lookup_names_missing_classes():
    import torch

    emb = TextEmbeddings(("a", "b"), torch.eye(2, 4))
    assert emb.features_for(["b", "a"]).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    with pytest.raises(InputError, match=r"no embedding for \['c'\]"):
        emb.features_for(["a", "c"], source="e.pt")


def test_global_image_ids_follow_manifest_and_reject_foreign_coco(tiny_split, tmp_path):
    from defectkit.datasets.split import load_split

    manifest = load_split(tiny_split)
    ids = global_image_ids(manifest, tmp_path, ["test"])  # no COCO file: computed from the manifest
    assert ids == {e.name: i + 1 for i, e in enumerate(manifest.entries)}
    entry = manifest.subset("test")[0]
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "test.json").write_text(json.dumps({"images": [{"id": 999, "name": entry.name}]}))
    with pytest.raises(InputError, match="another split.json"):
        global_image_ids(manifest, tmp_path, ["test"])


def _bare_world_trainer(nc: int = 3):
    """A TextFileWorldTrainer with just what ``get_model`` reads (no dataset, no training setup)."""
    import torch

    from defectkit.finetune.yolo_world.env import import_ultralytics

    import_ultralytics()
    from ultralytics.utils import callbacks as ul_callbacks

    from defectkit.finetune.yolo_world.trainer import TextFileWorldTrainer

    names = tuple(f"class {i}" for i in range(nc))
    trainer = TextFileWorldTrainer.__new__(TextFileWorldTrainer)
    trainer.data = {"channels": 3, "nc": nc, "names": dict(enumerate(names))}
    trainer.callbacks = ul_callbacks.get_default_callbacks()
    trainer.text_bank = TextEmbeddings(names, torch.nn.functional.normalize(torch.randn(nc, 512), dim=1))
    trainer.text_bank_source = "test"
    return trainer


def _contrastive_biases(model) -> list[float]:
    head = model.model[-1]
    return [c.bias.item() for c in head.cv4]


def test_from_scratch_world_model_gets_the_class_prior_bias():
    import math

    from defectkit.finetune.yolo_world.trainer import contrastive_prior_bias

    model = _bare_world_trainer(nc=3).get_model("yolov8n-worldv2.yaml", weights=None, verbose=False)
    strides = [float(s) for s in model.model[-1].stride]
    assert strides == [8.0, 16.0, 32.0]
    expected = [math.log(5 / 3 / (640 / s) ** 2) for s in strides]  # YOLOE's prior: -8.25, -6.86, -5.48
    assert _contrastive_biases(model) == pytest.approx(expected)
    assert [contrastive_prior_bias(3, s) for s in strides] == pytest.approx(expected)
    assert all(b > -9.0 for b in _contrastive_biases(model))  # ultralytics' own init is -10
    scales = [c.logit_scale.item() for c in model.model[-1].cv4]
    assert scales == pytest.approx([math.log(2.0)] * 3)  # ultralytics' own init is -1


def test_world_model_from_weights_keeps_its_contrastive_bias():
    import torch

    trainer = _bare_world_trainer(nc=3)
    pretrained = trainer.get_model("yolov8n-worldv2.yaml", weights=None, verbose=False)
    with torch.no_grad():
        for level, c in enumerate(pretrained.model[-1].cv4):
            c.bias.fill_(-10.0 + level)  # what a pretrained checkpoint carries, kept as is
            c.logit_scale.fill_(0.5 + level)
    model = trainer.get_model("yolov8n-worldv2.yaml", weights=pretrained, verbose=False)
    assert _contrastive_biases(model) == pytest.approx([-10.0, -9.0, -8.0])
    assert [c.logit_scale.item() for c in model.model[-1].cv4] == pytest.approx([0.5, 1.5, 2.5])
